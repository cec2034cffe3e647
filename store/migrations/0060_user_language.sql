-- The console's language is kept per user on the server, so it follows the person from
-- browser to browser and phone. NULL: never chosen, the browser's language applies.
ALTER TABLE users ADD COLUMN lang text
    CONSTRAINT users_lang_known CHECK (lang IN ('zh-CN', 'en'));
