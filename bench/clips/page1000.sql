-- dd_clips_page, page 1,000 (rows 49,951 to 50,000) with its cursor.
SELECT dd_clips_page('heavy', 50, (SELECT deep_cursor FROM bench_cursor));
