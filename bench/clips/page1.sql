-- dd_clips_page, first page of the user with 100,000 clips (cursor NULL,
-- read the same way as the deep cursor so both pay for it).
SELECT dd_clips_page('heavy', 50, (SELECT first_cursor FROM bench_cursor));
