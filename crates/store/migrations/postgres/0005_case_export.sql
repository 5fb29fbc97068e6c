-- Case exports. Each case keeps the names of its properties (sorted, comma-separated), so that an
-- export learns its columns from a DISTINCT over short texts before its first row, instead of
-- parsing every case's JSON twice; and its name in lower case, for searches by part of a name
-- that ignore case beyond ASCII on both engines (SQLite's LOWER folds ASCII only: names with
-- other letters are lowered again in Rust right after this script, in migrate.rs, as every
-- write does). One UPDATE fills both, so the table is rewritten once.
ALTER TABLE cases ADD COLUMN property_keys TEXT NOT NULL DEFAULT '';
ALTER TABLE cases ADD COLUMN name_lower TEXT NOT NULL DEFAULT '';
UPDATE cases SET name_lower = LOWER(name), property_keys = CASE WHEN properties = '{}' THEN '' ELSE
  COALESCE((SELECT string_agg(k, ',' ORDER BY k COLLATE "C") FROM jsonb_object_keys(properties::jsonb) AS k), '') END;
-- Lists and exports page through a project's cases by row id: without this index SQLite read
-- each page through another index on project_id and sorted the whole project again.
CREATE INDEX cases_project_id ON cases(project_id, id);
-- An export made in the background (an .xlsx from the case list), its file in chunks.
CREATE TABLE exports (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  project_id BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  user_id BIGINT REFERENCES users(id) ON DELETE SET NULL,
  format TEXT NOT NULL,
  -- JSON: the case list's filters
  filter TEXT NOT NULL,
  file_name TEXT NOT NULL,
  -- 'queued', 'running', 'done' or 'failed'
  status TEXT NOT NULL,
  total_rows BIGINT NOT NULL DEFAULT 0,
  processed_rows BIGINT NOT NULL DEFAULT 0,
  size_bytes BIGINT NOT NULL DEFAULT 0,
  -- Each run of the job that makes the file counts one more; the file is the chunks of the
  -- run that finished it (a run that lost its lease cannot mix its chunks in).
  run BIGINT NOT NULL DEFAULT 0,
  error TEXT,
  created_at BIGINT NOT NULL,
  finished_at BIGINT
);
CREATE INDEX exports_project ON exports(project_id, id);
CREATE TABLE export_chunks (
  export_id BIGINT NOT NULL REFERENCES exports(id) ON DELETE CASCADE,
  run BIGINT NOT NULL,
  seq BIGINT NOT NULL,
  bytes BYTEA NOT NULL,
  PRIMARY KEY (export_id, run, seq)
);
