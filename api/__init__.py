"""API: the regulator's feed (REST + SSE), alert actions, devices and readings, and
QR-coded visits. ``api.app.create_app(settings, database_url)`` builds it.

Error tree::

    ApiError
     ├── TokenError    a QR token that is malformed, forged, altered or unknown
     └── BodyTooLarge  a streamed request body passed its route's limit (also an
                       HTTPException(413), so FastAPI lets it through as the answer)
"""
