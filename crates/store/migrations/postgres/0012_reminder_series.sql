-- Which occurrences of a (rule, case) were handled, by number within a series: the series is
-- the case's start date (a date rule) or the instant it started matching (an `immediately`
-- rule). While the series is the same, an occurrence whose number was handled is never due
-- again, whatever the rule's time or the case's zone became since; a new start date starts a
-- new series.
ALTER TABLE reminder_schedules ADD COLUMN handled_series TEXT;
ALTER TABLE reminder_schedules ADD COLUMN handled_occurrence BIGINT;
