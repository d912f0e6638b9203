-- What an ORM writes for page 1.
SELECT * FROM clips WHERE user_id = 'heavy' AND deleted_at IS NULL
ORDER BY created_at DESC LIMIT 50 OFFSET 0;
