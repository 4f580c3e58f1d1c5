-- vonage_messages: one row per message sent through /send (collection "messages", the records of
-- shared/messages/records.py), in columns, for Replit's database pane or any SQL client.
--
-- The recipient is MASKED (to_masked: country code and last two digits, e.g. +44********23): this
-- view is what people browse, screenshot and export, and a phone number is personal data. The
-- full number stays in the record for a deliberate lookup: data->>'to' on vonage_documents.
--
-- Casts are guarded so one odd record can never make the whole view fail to read.
CREATE OR REPLACE VIEW vonage_messages AS
SELECT
    d.key                                                         AS id,
    d.data ->> 'channel'                                          AS channel,
    d.data ->> 'api'                                              AS api,
    CASE
        WHEN length(regexp_replace(coalesce(d.data ->> 'to', ''), '\D', '', 'g')) >= 5 THEN
            '+' || left(regexp_replace(d.data ->> 'to', '\D', '', 'g'), 2)
                || repeat('*', length(regexp_replace(d.data ->> 'to', '\D', '', 'g')) - 4)
                || right(regexp_replace(d.data ->> 'to', '\D', '', 'g'), 2)
        ELSE repeat('*', length(regexp_replace(coalesce(d.data ->> 'to', ''), '\D', '', 'g')))
    END                                                           AS to_masked,
    d.data ->> 'from'                                             AS sender,
    d.data ->> 'status'                                           AS status,
    d.data -> 'error' ->> 'code'                                  AS error_code,
    d.data -> 'error' ->> 'message'                               AS error_message,
    CASE WHEN jsonb_typeof(d.data -> 'vonage_ids') = 'array'
         THEN ARRAY(SELECT jsonb_array_elements_text(d.data -> 'vonage_ids')) END
                                                                  AS vonage_ids,
    CASE WHEN d.data ->> 'price' ~ '^-?[0-9]+(\.[0-9]+)?$'
         THEN (d.data ->> 'price')::numeric END                   AS price,
    CASE WHEN d.data ->> 'submit_price' ~ '^-?[0-9]+(\.[0-9]+)?$'
         THEN (d.data ->> 'submit_price')::numeric END            AS submit_price,
    d.data ->> 'currency'                                         AS currency,
    d.data ->> 'client_ref'                                       AS client_ref,
    CASE WHEN d.data ->> 'created_at' ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$'
         THEN (d.data ->> 'created_at')::timestamptz END          AS created_at,
    CASE WHEN d.data ->> 'submitted_at' ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$'
         THEN (d.data ->> 'submitted_at')::timestamptz END        AS submitted_at,
    CASE WHEN d.data ->> 'updated_at' ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$'
         THEN (d.data ->> 'updated_at')::timestamptz END          AS updated_at
FROM vonage_documents AS d
WHERE d.collection = 'messages'
  AND (d.expire_at IS NULL OR d.expire_at > extract(epoch FROM now()));

COMMENT ON VIEW vonage_messages IS
    'vonage-functions: messages sent through /send, one row each (recipient masked; see docs/postgres.md)';
