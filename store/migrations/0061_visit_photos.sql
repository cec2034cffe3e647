-- Photos an inspector takes of their findings, sent at check-out from the phone page.
-- Kept like a case response's attachments (content and its SHA-256 in the row); they
-- show on the timeline of the visit's case once the visit is over.
CREATE TABLE visit_photos (
    id            bigserial PRIMARY KEY,
    visit_id      bigint NOT NULL REFERENCES visits (id),
    inspector_id  text NOT NULL,
    filename      text NOT NULL,
    content_type  text NOT NULL,
    size          integer NOT NULL CHECK (size >= 0),
    sha256        bytea NOT NULL CHECK (length(sha256) = 32),
    content       bytea NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX visit_photos_visit ON visit_photos (visit_id);
