-- Events with repeated ids.
\set u random(1, 1000)
\set e random(1, 40)
SELECT dd_track_event('u' || :u, 'opened', '{}', 'e' || :e);
