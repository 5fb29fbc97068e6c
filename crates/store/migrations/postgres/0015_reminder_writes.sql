-- Lighter writes of reminder schedules and occurrences (issue 15's PostgreSQL figures).
--
-- A foreign key is checked by a trigger on every row written, which locks the referenced row:
-- a rule's evaluation over a million cases locked each of the million cases (a write to each
-- case's page, and its WAL), and firing locked each case again. Cases are never deleted (they
-- are marked deleted), so the checks on `case_pk` guard nothing here, as for `messages`
-- (0004); the keys on `reminder_id` stay, so that deleting a rule still takes its rows.
ALTER TABLE reminder_schedules DROP CONSTRAINT reminder_schedules_case_pk_fkey;
ALTER TABLE reminder_occurrences DROP CONSTRAINT reminder_occurrences_case_pk_fkey;
-- Only the cascade from `cases` read schedules by case alone.
DROP INDEX reminder_schedules_case;
-- The partial unique index of 0014, (reminder_id, due_at, phone) WHERE outcome = 'queued',
-- serves the one lookup by number (numbers already sent this occurrence).
DROP INDEX reminder_occurrences_phone;
