#!/usr/bin/env python3
"""test/convex/make_export.py -- ZIPs in the exact layout of `npx convex export
--include-file-storage`, for test/t/080_convex_import.sh and bench/convex_import.sh.

    make_export.py base OUT.zip            the test export
    make_export.py grown OUT.zip           the same, later: documents added, one changed
    make_export.py bench OUT.zip N_USAGE N_CLIPS   a large export for the benchmark

The layout (read from Convex's exporter, crates/application/src/exports/
zip_uploader.rs): README.md at the root; per table <table>/documents.jsonl, one
JSON object per line ending with a newline, and <table>/generated_schema.jsonl,
whose first line is a JSON string (the inferred shape) and every further line
{"<_id>": <export context>} for documents whose values need special reading
("int64" for 64-bit integers, which clean JSON writes as strings); component
tables under a path prefix; _storage/documents.jsonl and the file bodies
_storage/<_id><extension guessed from the content type>.

Plain Python (the standard library only): Debian's python3, which the test
command already installs for examples/python.
"""
import base64
import hashlib
import json
import sys
import zipfile

README = """# Welcome to your Convex snapshot export!

This ZIP file contains a snapshot of the tables in your Convex deployment.

Documents for each table are listed as lines of JSON in
<table_name>/documents.jsonl files.

For details on the format and how to use this snapshot with npx convex import,
check out [the docs](https://docs.convex.dev/database/import-export/export) or
ask us in [Discord](http://convex.dev/community).
"""

# Plaintext keys of the old system: what customers hold today.
KEY_PLAIN = "sk_live_4f8Qz1xVb7Lk2Np9Rt6Wc3Ym5Hd0Js8Ga"
KEY_REVOKED = "sk_live_revokedR3v0k3dR3v0k3dR3v0k3dXYZ"
KEY_EXPIRED = "sk_live_expiredE5p1r3dE5p1r3dE5p1r3dXYZ"
KEY_HEX = "sk_live_hashedAsHexHashedAsHexHashedAsH"
KEY_B64 = "sk_live_hashedAsB64HashedAsB64HashedAsB"

T0 = 1777907009446.7734  # a _creationTime as Convex writes it
UNICODE_USER = "ユーザー☃-é"


def cid(prefix, n):
    """A Convex-like _id: 32 characters of [a-z0-9]."""
    s = (prefix + "%08d" % n).ljust(32, "x")
    return s[:32]


def line(doc):
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


def schema_lines(shape, overrides):
    out = [json.dumps(shape)]
    for doc_id, ctx in overrides:
        out.append(json.dumps({doc_id: ctx}))
    return "\n".join(out) + "\n"


def blob(content):
    return base64.b64encode(hashlib.sha256(content).digest()).decode()


def base_tables(grown):
    t = T0
    keys = [
        {"_id": cid("key", 1), "_creationTime": t, "userId": "user_1", "name": "laptop",
         "key": KEY_PLAIN, "lastUsedAt": t + 5000},
        {"_id": cid("key", 2), "_creationTime": t + 1, "userId": "user_1", "name": "old",
         "key": KEY_REVOKED, "revokedAt": t + 2000},
        {"_id": cid("key", 3), "_creationTime": t + 2, "userId": "user_2",
         "key": KEY_EXPIRED, "expiresAt": 1000000000000},
        {"_id": cid("key", 4), "_creationTime": t + 3, "userId": UNICODE_USER, "name": "hex",
         "keyHash": hashlib.sha256(KEY_HEX.encode()).hexdigest()},
        {"_id": cid("key", 5), "_creationTime": t + 4, "userId": "user_2", "name": "b64",
         "keyHash": base64.b64encode(hashlib.sha256(KEY_B64.encode()).digest()).decode(),
         "scopes": ["read"]},
        "MALFORMED",
        {"_id": cid("key", 7), "_creationTime": t + 6, "userId": "user_2", "name": "no key"},
        {"_id": cid("key", 8), "_creationTime": t + 7, "userId": "user_2",
         "key": "ddk_notAValidCheckedKey"},
    ]
    credits = [
        {"_id": cid("cred", 1), "_creationTime": t, "userId": "user_1", "balance": 100},
        {"_id": cid("cred", 2), "_creationTime": t + 1, "userId": UNICODE_USER,
         "balance": "9007199254740993"},
        {"_id": cid("cred", 3), "_creationTime": t + 2, "userId": "user_2", "balance": "12"},
        {"_id": cid("cred", 4), "_creationTime": t + 3, "userId": "user_3", "balance": 0,
         "plan": "free"},
    ]
    if grown:
        credits[0]["balance"] = 94   # user_1 spent 6 more in Convex (usage r8)
    credits_overrides = [(cid("cred", 2), {"balance": "int64"})]
    usage = [
        {"_id": cid("use", 1), "_creationTime": t + 10, "userId": "user_1", "requestId": "r1",
         "endpoint": "/v1/clip", "credits": 3, "apiKeyId": cid("key", 1),
         "metadata": {"ms": 12}},
        {"_id": cid("use", 2), "_creationTime": t + 11, "userId": "user_1", "requestId": "r2",
         "endpoint": "/v1/clip", "credits": 4, "apiKeyId": cid("key", 1)},
        {"_id": cid("use", 3), "_creationTime": t + 12, "userId": UNICODE_USER,
         "requestId": "r1", "endpoint": "/v1/big", "credits": "9007199254740993"},
        {"_id": cid("use", 4), "_creationTime": t + 13, "userId": "user_2",
         "endpoint": "/v1/free"},
        "{\"_id\": \"broken\", ",
        {"_id": cid("use", 6), "_creationTime": t + 15, "userId": "user_4", "requestId": "r9",
         "credits": 5, "apiKeyId": cid("gone", 1)},
        {"_id": cid("use", 7), "_creationTime": t + 16, "userId": "user_1", "requestId": "r7",
         "credits": -2},
    ]
    usage_overrides = [(cid("use", 3), {"credits": "int64"})]
    if grown:
        usage.append({"_id": cid("use", 8), "_creationTime": t + 17, "userId": "user_1",
                      "requestId": "r8", "endpoint": "/v1/clip", "credits": 6,
                      "apiKeyId": cid("key", 1)})
    long_text = "transcript " * 20000
    clips = [
        {"_id": cid("clip", 1), "_creationTime": t + 20, "userId": "user_1",
         "title": "First clip", "sourceUrl": "https://example.com/a", "tags": ["a", "b"],
         "storageId": cid("stor", 1), "legacyRating": 4},
        {"_id": cid("clip", 2), "_creationTime": t + 21, "userId": UNICODE_USER,
         "title": "Ünïcödé ☃", "transcript": long_text, "storageId": cid("stor", 2)},
        # Written as text: these decimals are what the exporter writes, and
        # each sits on a rounding boundary (x.5 microseconds rounds up).
        '{"_id":"%s","_creationTime":1777907009446.7735,"userId":"user_1"}' % cid("clip", 3),
        {"_id": cid("clip", 4), "_creationTime": t + 23, "userId": "user_2", "tags": "x"},
        "",
        {"_id": cid("clip", 6), "_creationTime": t + 25, "userId": "user_2",
         "title": "deleted", "deletedAt": t + 99, "status": "archived",
         "notes": "with \"quotes\", a backslash \\ and a tab\t"},
    ]
    if grown:
        clips[0]["title"] = "First clip (renamed)"
        clips.append({"_id": cid("clip", 7), "_creationTime": t + 26, "userId": "user_1",
                      "title": "added later"})
    events = [
        {"_id": cid("evt", 1), "_creationTime": t + 30, "userId": "user_1", "event": "opened",
         "properties": {"n": 1}, "eventId": "e1", "occurredAt": t + 29},
        {"_id": cid("evt", 2), "_creationTime": t + 31, "userId": "user_1", "event": "opened",
         "eventId": "e1"},
        {"_id": cid("evt", 3), "_creationTime": t + 32, "userId": UNICODE_USER,
         "event": "x" * 300},
        {"_id": cid("evt", 4), "_creationTime": t + 33, "userId": "user_2"},
        '{"_id":"%s","_creationTime":1777907009446.0004999,"userId":"user_2","event":"edge",'
        '"occurredAt":-0.0005}' % cid("evt", 5),
    ]
    bodies = [
        (cid("stor", 1), b"first clip body\n", "text/plain", ".txt", None),
        (cid("stor", 2), b"\x00\x01binary\xff" * 100, "application/octet-stream", "", None),
        (cid("stor", 3), b"tampered body", "image/png", ".png", b"original body"),
    ]
    return keys, credits, credits_overrides, usage, usage_overrides, clips, events, bodies


def write_table(z, name, docs, overrides=(), shape="{_id: string, ...}"):
    text = "".join((d if isinstance(d, str) else line(d)) + "\n" for d in docs)
    z.writestr(name + "/documents.jsonl", text)
    z.writestr(name + "/generated_schema.jsonl", schema_lines(shape, overrides))


def build_base(out, grown):
    keys, credits, cov, usage, uov, clips, events, bodies = base_tables(grown)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("README.md", README)
        write_table(z, "apiKeys", keys)
        write_table(z, "apiCredits", credits, cov)
        write_table(z, "apiUsageLog", usage, uov)
        write_table(z, "clips", clips)
        write_table(z, "usageEvents", events)
        write_table(z, "notes", [{"_id": cid("note", 1), "_creationTime": T0}])
        write_table(z, "_components/ratelimiter/rateLimits",
                    [{"_id": cid("rl", 1), "_creationTime": T0}])
        storage = []
        for i, (sid, content, ctype, ext, claimed) in enumerate(bodies):
            storage.append({"_id": sid, "_creationTime": T0 + i,
                            "sha256": blob(claimed if claimed else content),
                            "size": len(content), "contentType": ctype,
                            "internalId": "internal%d" % i})
            z.writestr("_storage/" + sid + ext, content)
        z.writestr("_storage/documents.jsonl", "".join(line(d) + "\n" for d in storage))


def build_bench(out, n_usage, n_clips):
    users = 10000
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("README.md", README)
        write_table(z, "apiCredits", [
            {"_id": cid("cred", u), "_creationTime": T0 + u, "userId": "user_%d" % u,
             "balance": 1000000} for u in range(users)])
        with z.open("apiUsageLog/documents.jsonl", "w") as f:
            for i in range(n_usage):
                f.write((line({"_id": cid("use", i), "_creationTime": T0 + i * 0.5,
                               "userId": "user_%d" % (i % users), "requestId": "req-%d" % i,
                               "endpoint": "/v1/clip", "credits": 1,
                               "metadata": {"ms": i % 100}}) + "\n").encode())
        z.writestr("apiUsageLog/generated_schema.jsonl", schema_lines("{...}", []))
        with z.open("clips/documents.jsonl", "w") as f:
            for i in range(n_clips):
                f.write((line({"_id": cid("clip", i), "_creationTime": T0 + i * 0.25,
                               "userId": "user_%d" % (i % users), "title": "clip %d" % i,
                               "sourceUrl": "https://example.com/%d" % i,
                               "tags": ["t%d" % (i % 7)],
                               "notes": "notes of clip %d" % i}) + "\n").encode())
        z.writestr("clips/generated_schema.jsonl", schema_lines("{...}", []))


if __name__ == "__main__":
    kind, out = sys.argv[1], sys.argv[2]
    if kind in ("base", "grown"):
        build_base(out, kind == "grown")
    elif kind == "bench":
        build_bench(out, int(sys.argv[3]), int(sys.argv[4]))
    else:
        sys.exit("usage: make_export.py base|grown|bench OUT.zip [N_USAGE N_CLIPS]")
