"""Matching buyer questions to knowledge-base entries: jieba + BM25.

Each entry's question, similar questions and answer are indexed as separate
short documents; an entry scores as its best one. Text is lower-cased,
segmented with jieba's search mode (which adds the shorter words inside long
ones), mapped through the synonym table and stripped of stop words (亲, 你好,
请问, particles, generic product nouns, punctuation); the remaining Chinese
characters also count as single characters and bigrams, which tolerates typos
and segmentation differences (包不包邮 still meets 包邮). Ranking is Okapi BM25
over an inverted index, so a question only touches the documents that share
a token with it.

An entry answers when its BM25 score reaches ``min_score``, or when the
question covers at least ``min_coverage`` of what the matched document would
score against itself (scale-free, so a knowledge base of five entries, whose
IDFs are small, still answers). The tokens, fields and thresholds were chosen
by measuring on the labelled set in ``bench/kb`` (``python -m
bench.kb.evaluate``; numbers in bench/README.md).
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import jieba

jieba.setLogLevel(logging.WARNING)

DEFAULT_STOP_WORDS = frozenset("""
亲 亲亲 你好 您好 在吗 请问 问下 问一下 一下 麻烦 谢谢 老板 客服 小姐姐 哈 哈哈 啊 呀 吗 呢 吧 啦
的 了 么 嘛 哦 噢 呃 嗯 我 你 您 我们 你们 他 她 它 这个 那个 这 那 个 是 有 就 都 也 还 要 想 能
在 和 跟 把 给 让 被 请 下 上 怎么 怎么样 怎样 如何 什么 啥 为什么 多少 几 没 没有 不 可以 可 会
衣服 裤子 东西 宝贝 商品 产品 这件 这款 那件 件 款 买 拍 刚 刚刚 昨天 今天 现在
一直 还是 已经 怎么办
the a an is are to of and or do does can i you my your please hi hello
""".split())

DEFAULT_SYNONYMS: Mapping[str, str] = {
    "快递": "物流", "邮寄": "寄", "邮费": "运费", "寄回": "退回", "退回去": "退回",
    "码子": "尺码", "码数": "尺码", "尺寸": "尺码", "号码": "尺码", "码": "尺码",
    "材料": "面料", "材质": "面料", "褪色": "掉色", "洗掉": "掉色", "到账": "退款",
    "券": "优惠券", "折扣": "优惠", "便宜": "优惠", "打折": "优惠", "vip": "会员",
    "花呗": "分期", "到付": "货到付款", "实体店": "门店", "线下": "门店", "定做": "定制",
    "什么时侯": "什么时候", "时侯": "时候", "发出": "发货", "寄出": "发货",
    "付钱": "付款", "支付": "付款", "单号": "物流", "中转": "物流", "不动": "不更新",
    "退钱": "退款", "洞": "破", "开线": "破", "污渍": "瑕疵", "假货": "正品", "真的": "正品",
    "礼盒": "礼物", "包装": "礼物", "洗衣机": "机洗", "活动": "优惠", "纯棉": "面料",
    "缺货": "补货", "没货": "补货", "到货": "补货", "收件": "收货",
}

_PUNCT = re.compile(r"^[\W_]+$", re.UNICODE)
_CJK = re.compile(r"[\u4e00-\u9fff]")
DEFAULT_MIN_SCORE = 10.5  # chosen on bench/kb (see the module docstring)
DEFAULT_MIN_COVERAGE = 0.5


@dataclass(frozen=True, slots=True)
class Match:
    """One candidate entry for a question."""

    entry: str
    score: float  # BM25 of its best document
    coverage: float  # that score over the document's score against itself (0..1+)


class Matcher:
    """An in-memory BM25 index over entries' phrasings. Not thread-safe: one owner."""

    def __init__(self, *, synonyms: Mapping[str, str] | None = None,
                 stop_words: Iterable[str] | None = None, k1: float = 1.2, b: float = 0.75,
                 min_score: float = DEFAULT_MIN_SCORE,
                 min_coverage: float = DEFAULT_MIN_COVERAGE) -> None:
        self.synonyms = dict(DEFAULT_SYNONYMS if synonyms is None else synonyms)
        self.stop_words = frozenset(DEFAULT_STOP_WORDS if stop_words is None else stop_words)
        self.k1, self.b = k1, b
        self.min_score, self.min_coverage = min_score, min_coverage
        self._postings: dict[str, dict[int, int]] = {}
        self._docs: dict[int, tuple[str, int]] = {}  # doc → (entry, length)
        self._terms: dict[int, Counter[str]] = {}  # doc → its token counts
        self._by_entry: dict[str, list[int]] = {}
        self._next_doc = 0
        self._total_length = 0

    # -- text ------------------------------------------------------------------

    def tokens(self, text: str) -> list[str]:
        """The tokens of a text as the index sees them: words, then CJK chars and bigrams."""
        words = []
        for word in jieba.lcut_for_search(text.lower()):
            word = word.strip()
            if not word or _PUNCT.match(word):
                continue
            word = self.synonyms.get(word, word)
            if word not in self.stop_words:
                words.append(word)
        chars = "".join(w for w in words if _CJK.search(w))
        return words + [chars[i:i + 2] for i in range(len(chars) - 1)] + list(chars)

    # -- index -----------------------------------------------------------------

    def upsert(self, entry: str, phrasings: Iterable[str]) -> None:
        """Index (or re-index) an entry's phrasings."""
        self.remove(entry)
        docs = []
        for text in phrasings:
            words = self.tokens(text)
            if not words:
                continue
            doc = self._next_doc
            self._next_doc += 1
            counts = Counter(words)
            for word, tf in counts.items():
                self._postings.setdefault(word, {})[doc] = tf
            self._docs[doc] = (entry, len(words))
            self._terms[doc] = counts
            self._total_length += len(words)
            docs.append(doc)
        if docs:
            self._by_entry[entry] = docs

    def remove(self, entry: str) -> None:
        """Drop an entry from the index (absent entries are fine)."""
        for doc in self._by_entry.pop(entry, ()):
            _, length = self._docs.pop(doc)
            self._total_length -= length
            for word in self._terms.pop(doc):
                posting = self._postings[word]
                del posting[doc]
                if not posting:
                    del self._postings[word]

    def __len__(self) -> int:
        return len(self._by_entry)

    # -- asking ----------------------------------------------------------------

    def _idf(self, word: str) -> float:
        n = len(self._docs)
        df = len(self._postings.get(word, ()))
        return math.log(1 + (n - df + 0.5) / (df + 0.5))

    def search(self, question: str, *, boost: Mapping[str, float] | None = None,
               limit: int = 3) -> list[Match]:
        """The best entries for ``question``, best first.

        ``boost`` multiplies the scores of some entries (e.g. 1.1 for a shop's own).
        """
        words = list(dict.fromkeys(self.tokens(question)))
        if not words or not self._docs:
            return []
        avgdl = self._total_length / len(self._docs)
        idf = {w: self._idf(w) for w in words}
        scores: dict[int, float] = {}
        k1, b = self.k1, self.b
        for word in words:
            weight = idf[word]
            for doc, tf in self._postings.get(word, {}).items():
                length = self._docs[doc][1]
                scores[doc] = scores.get(doc, 0.0) + weight * tf * (k1 + 1) / (
                    tf + k1 * (1 - b + b * length / avgdl))
        best: dict[str, tuple[float, int]] = {}
        for doc, score in scores.items():
            entry = self._docs[doc][0]
            factor = boost.get(entry, 1.0) if boost else 1.0
            if entry not in best or score * factor > best[entry][0]:
                best[entry] = (score * factor, doc)
        ranked = sorted(best.items(), key=lambda kv: (-kv[1][0], kv[0]))[:limit]
        return [Match(entry, score, score / self._self_score(doc, avgdl))
                for entry, (score, doc) in ranked]

    def _self_score(self, doc: int, avgdl: float) -> float:
        length, k1, b = self._docs[doc][1], self.k1, self.b
        return sum(self._idf(word) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / avgdl))
                   for word, tf in self._terms[doc].items()) or 1.0

    def answers(self, match: Match | None) -> bool:
        """Whether a match is confident enough to answer with."""
        return match is not None and (match.score >= self.min_score
                                      or match.coverage >= self.min_coverage)
