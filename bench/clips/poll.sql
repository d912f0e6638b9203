-- A client polling the change feed with the version it was given, nothing new.
SELECT dd_clip_changes('heavy', :since);
