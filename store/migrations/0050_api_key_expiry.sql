-- API keys expire (OFFSITE_API_KEY_TTL_DAYS, 90 days by default). Keys issued before this
-- migration never expired: they get 90 days from now, so nothing stops working today,
-- and from here on no API key can be stored without an expiry.
UPDATE api_tokens SET expires_at = now() + interval '90 days'
 WHERE kind = 'api_key' AND expires_at IS NULL AND revoked_at IS NULL;
UPDATE api_tokens SET expires_at = revoked_at
 WHERE kind = 'api_key' AND expires_at IS NULL;
ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_api_key_expires
    CHECK (kind <> 'api_key' OR expires_at IS NOT NULL);
