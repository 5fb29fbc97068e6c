-- Messaging: gateways per project, the message table (outbox and inbound log), opt-outs.
-- Settings a project can change (quiet hours, keywords, replies, validity), as JSON.
ALTER TABLE projects ADD COLUMN messaging_settings TEXT NOT NULL DEFAULT '{}';
CREATE TABLE gateways (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  project_id BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  name_key TEXT NOT NULL,
  kind TEXT NOT NULL,
  -- The kind's settings as JSON, credentials included, sealed (encrypted) with the server key.
  config_sealed TEXT NOT NULL,
  -- The webhook secret, sealed (the dispatcher writes it into callback URLs) and as a digest
  -- (what an incoming webhook is compared with).
  webhook_secret_sealed TEXT NOT NULL,
  webhook_digest TEXT NOT NULL,
  callback_base_url TEXT NOT NULL,
  max_segments_per_second DOUBLE PRECISION,
  max_attempts BIGINT NOT NULL DEFAULT 5,
  prefixes TEXT NOT NULL DEFAULT '',
  is_default BIGINT NOT NULL DEFAULT 0,
  deleted_at BIGINT,
  created_at BIGINT NOT NULL,
  modified_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX gateways_live_name ON gateways(project_id, name_key) WHERE deleted_at IS NULL;
-- The shared rate limiter of each gateway (GCRA): the instant, in microseconds, from which the
-- next segment may be handed over. Every dispatcher of every process reserves time here.
CREATE TABLE gateway_rates (
  gateway_id BIGINT PRIMARY KEY REFERENCES gateways(id) ON DELETE CASCADE,
  next_free_us BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE messages (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  project_id BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  direction TEXT NOT NULL,
  -- 'normal', or 'confirmation' (the reply to STOP/START, sent even to an opted-out number).
  kind TEXT NOT NULL DEFAULT 'normal',
  case_pk BIGINT REFERENCES cases(id) ON DELETE SET NULL,
  phone TEXT NOT NULL,
  text TEXT NOT NULL,
  status TEXT NOT NULL,
  encoding TEXT NOT NULL,
  segments BIGINT NOT NULL,
  gateway_id BIGINT REFERENCES gateways(id),
  broadcast_id BIGINT,
  user_id BIGINT REFERENCES users(id) ON DELETE SET NULL,
  attempts BIGINT NOT NULL DEFAULT 0,
  next_attempt_at BIGINT NOT NULL,
  lease_until BIGINT,
  leased_by TEXT,
  gateway_message_id TEXT,
  error TEXT,
  created_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  sent_at BIGINT,
  delivered_at BIGINT,
  updated_at BIGINT NOT NULL
);
-- The claim's order (due time, then id) read straight from the index: a broadcast queues
-- thousands of messages with the same due time, which would otherwise be sorted at every claim.
CREATE INDEX messages_due ON messages(gateway_id, next_attempt_at, id) WHERE status = 'queued';
CREATE INDEX messages_in_flight ON messages(lease_until) WHERE status = 'sending';
CREATE INDEX messages_project ON messages(project_id, id);
CREATE INDEX messages_case ON messages(case_pk, id);
CREATE INDEX messages_phone ON messages(project_id, phone, id);
CREATE TABLE opt_outs (
  project_id BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  phone TEXT NOT NULL,
  source TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (project_id, phone)
);
CREATE INDEX messages_expiry ON messages(expires_at) WHERE status = 'queued';
-- A gateway that delivers the same inbound message twice (a retried webhook) records it once.
CREATE UNIQUE INDEX messages_inbound_once ON messages(gateway_id, gateway_message_id)
  WHERE direction = 'inbound' AND gateway_message_id IS NOT NULL;
-- One default gateway per project.
CREATE UNIQUE INDEX gateways_one_default ON gateways(project_id) WHERE is_default = 1 AND deleted_at IS NULL;
-- The key check: a value sealed with the server key, so that a process started with another
-- key refuses to start instead of failing on every gateway.
CREATE TABLE server_key_check (
  id BIGINT PRIMARY KEY,
  sealed TEXT NOT NULL
);
