import sys
import texts as T
from embed import embed
stage = sys.argv[1]
if stage == "use":
    embed("use", "queries", T.QUESTIONS)
    embed("use", "titles", T.TITLES)
    embed("use", "entitles", T.EN_TEXTS)
    embed("use", "chunks", T.CHUNKS)
if stage == "e5small":
    embed("e5", "queries", T.QUESTIONS, query=True)
    embed("e5", "titles", T.TITLES)
    embed("e5", "entitles", T.EN_TEXTS)
if stage == "e5heads":
    embed("e5", "heads", T.HEADS)
if stage == "e5sub":
    embed("e5", "subchunks", T.SUB_CHUNKS)
if stage == "usetchunks":
    embed("use", "tchunks", T.TCHUNKS)
