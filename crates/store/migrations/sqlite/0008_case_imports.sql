-- Case imports from the pages: the sheet is stored with a job, checked whole, then written in
-- batches, each one transaction with its rows' results and the progress, so that a restarted
-- worker resumes after the rows already written and the per-row report stays available.
CREATE TABLE case_imports (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  project_id BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  file_name TEXT NOT NULL,
  -- dropped when the import ends
  file_bytes BLOB,
  -- 'queued', 'running', 'done' or 'failed'
  status TEXT NOT NULL,
  total_rows BIGINT NOT NULL DEFAULT 0,
  processed_rows BIGINT NOT NULL DEFAULT 0,
  -- JSON: rows by outcome (created, updated, unchanged, blank, error)
  counts TEXT NOT NULL DEFAULT '{}',
  error TEXT,
  user_id BIGINT REFERENCES users(id) ON DELETE SET NULL,
  created_at BIGINT NOT NULL,
  finished_at BIGINT
);
CREATE INDEX case_imports_project ON case_imports(project_id, id);
CREATE TABLE case_import_results (
  import_id BIGINT NOT NULL REFERENCES case_imports(id) ON DELETE CASCADE,
  row_number BIGINT NOT NULL,
  outcome TEXT NOT NULL,
  case_id TEXT,
  column_name TEXT NOT NULL DEFAULT '',
  message TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (import_id, row_number)
);
