-- One reminder message a number an occurrence, held by the database: two cases sharing a
-- phone number, fired by two workers at once, each saw no message to the number yet (neither
-- had committed) and both sent. Now the second insert of a 'queued' occurrence for the number
-- waits for the first and finds it, and the engine records the case as 'same_phone'.
--
-- Before this, such a pair could be recorded 'queued' twice. The message log keeps both
-- messages as sent; here the later case of each pair is relabelled 'same_phone' so that the
-- index can be made.
UPDATE reminder_occurrences SET outcome = 'same_phone'
WHERE outcome = 'queued' AND phone IS NOT NULL AND EXISTS (
  SELECT 1 FROM reminder_occurrences o
  WHERE o.reminder_id = reminder_occurrences.reminder_id
    AND o.due_at = reminder_occurrences.due_at
    AND o.phone = reminder_occurrences.phone
    AND o.outcome = 'queued'
    AND o.case_pk < reminder_occurrences.case_pk
);
CREATE UNIQUE INDEX reminder_occurrences_one_queued_a_phone
  ON reminder_occurrences(reminder_id, due_at, phone) WHERE outcome = 'queued';
