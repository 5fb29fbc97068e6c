-- The partial unique index of 0014, (reminder_id, due_at, phone) WHERE outcome = 'queued',
-- serves the one lookup by number (numbers already sent this occurrence); this one only cost
-- every occurrence written. (PostgreSQL also drops the foreign keys on case_pk here; SQLite's
-- checks cost little and stay.)
DROP INDEX reminder_occurrences_phone;
-- Schedules by case alone were read only by the foreign key's cascade when a case is deleted,
-- and cases are never deleted (they are marked deleted): as on PostgreSQL, no such index.
DROP INDEX reminder_schedules_case;
