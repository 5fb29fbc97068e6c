-- Accounts: when each login last logged in (shown to a project's admins). Failed logins stay in
-- login_failures, keyed by (email, client address) and by client address.
ALTER TABLE users ADD COLUMN last_login_at BIGINT;
