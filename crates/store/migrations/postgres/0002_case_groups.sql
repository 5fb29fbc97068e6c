CREATE TABLE case_groups (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  project_id BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  name_key TEXT NOT NULL,
  -- Live (not deleted) member cases, kept by every change so that no page counts a million rows.
  member_count BIGINT NOT NULL DEFAULT 0,
  created_at BIGINT NOT NULL,
  modified_at BIGINT NOT NULL,
  CONSTRAINT case_groups_name_key UNIQUE (project_id, name_key)
);
CREATE TABLE case_group_members (
  group_id BIGINT NOT NULL REFERENCES case_groups(id) ON DELETE CASCADE,
  case_pk BIGINT NOT NULL REFERENCES cases(id) ON DELETE CASCADE,
  added_at BIGINT NOT NULL,
  PRIMARY KEY (group_id, case_pk)
);
CREATE INDEX case_group_members_case ON case_group_members(case_pk);
CREATE TABLE case_group_history (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  group_id BIGINT NOT NULL REFERENCES case_groups(id) ON DELETE CASCADE,
  user_id BIGINT REFERENCES users(id) ON DELETE SET NULL,
  at BIGINT NOT NULL,
  action TEXT NOT NULL,
  via TEXT NOT NULL,
  added BIGINT NOT NULL DEFAULT 0,
  removed BIGINT NOT NULL DEFAULT 0,
  detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX case_group_history_group ON case_group_history(group_id, id);
CREATE TABLE jobs (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  kind TEXT NOT NULL,
  ref_id BIGINT NOT NULL,
  run_at BIGINT NOT NULL,
  attempts BIGINT NOT NULL DEFAULT 0,
  locked_until BIGINT,
  locked_by TEXT,
  done_at BIGINT,
  created_at BIGINT NOT NULL
);
CREATE INDEX jobs_due ON jobs(done_at, run_at);
CREATE TABLE uploads (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  project_id BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  group_id BIGINT REFERENCES case_groups(id) ON DELETE SET NULL,
  mode TEXT NOT NULL,
  file_name TEXT NOT NULL,
  file_bytes BYTEA,
  status TEXT NOT NULL,
  total_rows BIGINT NOT NULL DEFAULT 0,
  processed_rows BIGINT NOT NULL DEFAULT 0,
  counts TEXT NOT NULL DEFAULT '{}',
  error TEXT,
  user_id BIGINT REFERENCES users(id) ON DELETE SET NULL,
  created_at BIGINT NOT NULL,
  finished_at BIGINT
);
CREATE INDEX uploads_project ON uploads(project_id, id);
CREATE TABLE upload_results (
  upload_id BIGINT NOT NULL REFERENCES uploads(id) ON DELETE CASCADE,
  row_number BIGINT NOT NULL,
  identifier TEXT NOT NULL,
  outcome TEXT NOT NULL,
  case_id TEXT,
  case_pk BIGINT,
  message TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (upload_id, row_number)
);
