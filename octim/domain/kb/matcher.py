"""Matching buyer questions to knowledge-base entries: normalised text, BM25, and a
calibrated confidence.

**Text.** A question and every phrasing of an entry go through the same steps:
Unicode NFKC (full-width letters and digits become half-width), lower case, traditional
to simplified characters (OpenCC's table, for zh-TW and zh-HK buyers), jieba's search
mode segmentation, the synonym table (platform defaults, which are category-neutral
e-commerce shorthand and English words such as ``sf`` → 顺丰, ``tk`` → 退款, ``refund``
→ 退款; then the platform's own list and the shop's, managed over HTTP) and the stop
words (greetings, particles, question frames such as 有没有 and 能不能 that every
question shares). The remaining Chinese characters also count as single characters and
bigrams, which tolerates typos and segmentation differences.

**Pinyin.** An entry's Chinese words are also indexed by their pinyin and their initials
(pypinyin). A word of the question that no entry contains is looked up by its pinyin
(a homophone typo: 韵答 finds 韵达) and, when it is Latin letters, as pinyin or
initials (``shunfeng``, ``yfx`` for 运费险).

**Weights.** Okapi BM25 over an inverted index of each entry's phrasings (its question,
its similar questions and its answer); an entry scores as its best phrasing, plus half
the weight of the question's words it has elsewhere. Document frequencies count entries,
not phrasings, so an entry with many similar questions does not make its words look
common. What the buyer wants to do (退,
换, 发货, 发票, 保修, 优惠…: :data:`INTENTS`) weighs more than the product they name.

**Confidence.** Three scale-free measures of the best match: how much of the question's
weight it covers (a word no entry has counts against it), how much of the matched
phrasing the question covers, and its margin over the runner-up entry (scaled by the
lesser coverage). A logistic model of the three, fitted on the tuning material of
``bench/kb/eval`` (``python -m bench.kb.evaluate --fit``), turns them into a confidence
in 0..1. The measures are ratios, so they do not grow with the knowledge base (not yet
measured on one of thousands of entries for a shop); the bot answers at
:data:`ANSWER_AT` and below it offers its three best entries (您是不是想问).
"""

from __future__ import annotations

import logging
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

import jieba
from opencc import OpenCC
from pypinyin import lazy_pinyin

jieba.setLogLevel(logging.WARNING)

DEFAULT_STOP_WORDS = frozenset("""
亲 亲亲 你好 您好 在吗 在不在 请问 问下 问一下 一下 麻烦 帮 帮我 帮忙
谢谢 老板 客服 小姐姐 哈 哈哈 啊 呀 吗 呢 吧
啦 的 了 么 嘛 哦 噢 呃 嗯 哎 诶 我 你 您 我们 你们 他 她 它 这个 那个 这 那 个 是 有 就 都 也 还 要
想 能 在 和 跟 把 给 让 被 请 下 上 怎么 怎么样 怎样 如何 什么 啥 为什么 多少 几 没 没有 不 可以
可 会 东西 宝贝 商品 产品 这件 这款 那件 件 款 买 拍 刚 刚刚 昨天 今天 现在 一直 还是 已经 怎么办
有没有 是不是 能不能 可不可以 会不会 行不行 要不要 好不好 可以吗 能吗 行吗 一个 一些 这样
the a an is are to of and or do does can i you my your please hi hello it this
""".split())

#: Category-neutral defaults: e-commerce shorthand (pinyin initials buyers type), English
#: words, and spelling variants. A shop adds its own on top (its trade's words).
DEFAULT_SYNONYMS: Mapping[str, str] = {
    # shorthand
    "sf": "顺丰", "jd": "京东", "yd": "韵达", "zt": "中通", "yt": "圆通", "st": "申通",
    "tk": "退款", "th": "退货", "hh": "换货", "fh": "发货", "fp": "发票", "yfx": "运费险",
    "hb": "花呗", "yhq": "优惠券", "kd": "快递", "dd": "订单", "xb": "小二",
    "qtwly": "七天无理由", "7天": "七天", "7天无理由": "七天无理由",
    # English
    "refund": "退款", "return": "退货", "exchange": "换货", "ship": "发货",
    "shipping": "发货", "delivery": "物流", "invoice": "发票", "warranty": "保修",
    "coupon": "优惠券", "discount": "优惠", "cancel": "取消", "address": "地址",
    "size": "尺码", "price": "价格", "order": "订单", "fake": "假货", "genuine": "正品",
    "bluetooth": "蓝牙", "wash": "洗", "color": "颜色", "colour": "颜色",
    # variants and everyday words
    "快递": "物流", "邮寄": "寄", "邮费": "运费", "寄回": "退回", "退回去": "退回",
    "码数": "尺码", "码子": "尺码", "褪色": "掉色", "退钱": "退款",
    "折扣": "优惠", "打折": "优惠", "便宜": "优惠", "vip": "会员", "到付": "货到付款",
    "什么时侯": "什么时候", "时侯": "时候", "发出": "发货", "寄出": "发货", "付钱": "付款",
    "支付": "付款", "单号": "物流", "不动": "不更新", "假的": "假货", "仿品": "假货",
    "缺货": "补货", "没货": "补货", "收件": "收货", "质保": "保修", "开票": "发票",
    "专票": "增值税专用发票", "保价": "价格保护", "价保": "价格保护", "撤销": "取消",
}

#: What buyers want done: these words weigh more than the product a question names.
INTENTS = frozenset("""
退 退货 退款 退回 换 换货 发货 发 寄 物流 运费
运费险 发票 保修 维修 修 优惠 优惠券 取消 修改 改 地址
催 投诉 介入 赔 赔偿 假货 正品 分期 过敏
保质期 保存 尺码 色差 掉色 起球 七天无理由 价格保护 差价 补发
少发 漏发 破损 压碎 激活 拆封 防水 续航 配对 连接 兼容 开线 面料 洗 团购 礼盒 保质 冷藏 融化 化
""".split())
INTENT_WEIGHT = 1.8
ANSWER_WEIGHT = 1.0  # an entry's answer text, against its questions
CHAR_WEIGHT, BIGRAM_WEIGHT = 1.0, 1.0  # characters and bigrams inside a question's words
SPREAD_WEIGHT = 0.5  # words the entry has outside its best phrasing (its answer, others)

#: The confidence model (fitted by ``python -m bench.kb.evaluate --fit`` on the tuning
#: material of bench/kb/eval: the tuning half and the first held-out half, 304 questions
#: and 56 off-topic): intercept, then the weights of query coverage, phrasing coverage
#: and the scaled margin.
CONFIDENCE_MODEL = (-1.46, 3.17, 2.5, 1.83)
ANSWER_AT = 0.62  # ≤ 5% false answers on the tuning material; below it, three choices

_PUNCT = re.compile(r"^[\W_]+$", re.UNICODE)
_CJK = re.compile(r"[\u4e00-\u9fff]")
_LATIN = re.compile(r"^[a-z]+$")
_T2S = OpenCC("t2s")


def normalise(text: str) -> str:
    """NFKC (full-width → half-width), lower case, traditional → simplified."""
    return str(_T2S.convert(unicodedata.normalize("NFKC", text).lower()))


@lru_cache(maxsize=65_536)
def _pinyin(word: str) -> tuple[str, str]:
    """A Chinese word's pinyin without tones, and its initials."""
    syllables = lazy_pinyin(word, errors="ignore")
    return "".join(syllables), "".join(s[0] for s in syllables if s)


@dataclass(frozen=True, slots=True)
class Match:
    """One candidate entry for a question."""

    entry: str
    score: float  # BM25 of its best phrasing (weighted)
    coverage: float  # that score over the phrasing's score against itself (0..1+)
    query_coverage: float  # the share of the question's words' weight the entry has


class Matcher:
    """An in-memory BM25 index over entries' phrasings. Not thread-safe: one owner."""

    def __init__(self, *, synonyms: Mapping[str, str] | None = None,
                 stop_words: Iterable[str] | None = None, k1: float = 0.8, b: float = 0.75,
                 answer_at: float = ANSWER_AT,
                 model: tuple[float, float, float, float] = CONFIDENCE_MODEL) -> None:
        table = dict(DEFAULT_SYNONYMS)
        table.update({normalise(k): normalise(v) for k, v in (synonyms or {}).items()})
        self.synonyms = table
        self.stop_words = frozenset(DEFAULT_STOP_WORDS if stop_words is None else stop_words)
        self.k1, self.b = k1, b
        self.answer_at, self.model = answer_at, model
        self._postings: dict[str, dict[int, int]] = {}
        self._docs: dict[int, tuple[str, int, float]] = {}  # doc → (entry, length, weight)
        self._terms: dict[int, Counter[str]] = {}  # doc → its token counts
        self._by_entry: dict[str, list[int]] = {}
        self._entry_terms: dict[str, set[str]] = {}
        self._df: Counter[str] = Counter()  # term → entries having it
        self._next_doc = 0
        self._total_length = 0

    # -- text ------------------------------------------------------------------

    def words(self, text: str) -> list[str]:
        """The words of a text after normalisation, synonyms and stop words."""
        words = []
        for word in jieba.lcut_for_search(normalise(text)):
            word = word.strip()
            if not word or _PUNCT.match(word):
                continue
            word = self.synonyms.get(word, word)
            if word not in self.stop_words:
                words.append(word)
        return words

    def tokens(self, text: str) -> list[str]:
        """The tokens of a phrasing as the index holds them: words, CJK characters and
        bigrams, and each Chinese word's pinyin (``py:``) and initials (``in:``)."""
        words = self.words(text)
        chars = "".join(w for w in words if _CJK.search(w))
        out = words + [chars[i:i + 2] for i in range(len(chars) - 1)] + list(chars)
        for word in words:
            if len(word) > 1 and _CJK.search(word):
                full, initials = _pinyin(word)
                out += [f"py:{full}", f"in:{initials}"]
        return out

    def query_tokens(self, text: str, words: list[str] | None = None) -> list[str]:
        """The tokens of a question: as a phrasing's, and a word no entry has is also
        looked up by its pinyin (homophone typos) or, in Latin letters, as pinyin or
        initials."""
        words = self.words(text) if words is None else words
        chars = "".join(w for w in words if _CJK.search(w))
        out = words + [chars[i:i + 2] for i in range(len(chars) - 1)] + list(chars)
        for word in words:
            if word in self._postings:
                continue
            if _LATIN.match(word):
                out += [f"py:{word}", f"in:{word}"]
            elif len(word) > 1 and _CJK.search(word):
                out.append(f"py:{_pinyin(word)[0]}")
        return out

    # -- index -----------------------------------------------------------------

    def upsert(self, entry: str, phrasings: Iterable[str], answer: str | None = None) -> None:
        """Index (or re-index) an entry's phrasings and its answer."""
        self.remove(entry)
        docs = []
        terms: set[str] = set()
        texts = [(text, 1.0) for text in phrasings]
        if answer:
            texts.append((answer, ANSWER_WEIGHT))
        for text, weight in texts:
            words = self.tokens(text)
            if not words:
                continue
            doc = self._next_doc
            self._next_doc += 1
            counts = Counter(words)
            for word, tf in counts.items():
                self._postings.setdefault(word, {})[doc] = tf
            self._docs[doc] = (entry, len(words), weight)
            self._terms[doc] = counts
            self._total_length += len(words)
            terms.update(counts)
            docs.append(doc)
        if docs:
            self._by_entry[entry] = docs
            self._entry_terms[entry] = terms
            self._df.update(terms)

    def remove(self, entry: str) -> None:
        """Drop an entry from the index (absent entries are fine)."""
        for doc in self._by_entry.pop(entry, ()):
            _, length, _ = self._docs.pop(doc)
            self._total_length -= length
            for word in self._terms.pop(doc):
                posting = self._postings[word]
                del posting[doc]
                if not posting:
                    del self._postings[word]
        for term in self._entry_terms.pop(entry, ()):
            self._df[term] -= 1
            if not self._df[term]:
                del self._df[term]

    def __len__(self) -> int:
        return len(self._by_entry)

    # -- asking ----------------------------------------------------------------

    def _idf(self, word: str) -> float:
        n = len(self._by_entry)
        df = self._df.get(word, 0)
        return math.log(1 + (n - df + 0.5) / (df + 0.5))

    def _weight(self, token: str, words: frozenset[str] = frozenset()) -> float:
        """A token's weight: its IDF, more for an intent word, less for a pinyin look-up
        and for the characters and bigrams inside a question's words (they are there for
        typos, not to count a word three times)."""
        weight = self._idf(token)
        if token in INTENTS:
            weight *= INTENT_WEIGHT
        if token.startswith(("py:", "in:")):
            weight *= 0.8
        elif words and token not in words and _CJK.search(token):
            weight *= CHAR_WEIGHT if len(token) == 1 else BIGRAM_WEIGHT
        return weight

    def search(self, question: str, *, boost: Mapping[str, float] | None = None,
               limit: int = 3) -> list[Match]:
        """The best entries for ``question``, best first.

        ``boost`` multiplies the scores of some entries (e.g. 1.1 for a shop's own).
        """
        words = self.words(question)
        tokens = list(dict.fromkeys(self.query_tokens(question, words)))
        if not tokens or not self._docs:
            return []
        avgdl = self._total_length / len(self._docs)
        own = frozenset(words)
        weights = {t: self._weight(t, own) for t in tokens}
        scores: dict[int, float] = {}
        k1, b = self.k1, self.b
        for token in tokens:
            weight = weights[token]
            for doc, tf in self._postings.get(token, {}).items():
                length = self._docs[doc][1]
                scores[doc] = scores.get(doc, 0.0) + weight * tf * (k1 + 1) / (
                    tf + k1 * (1 - b + b * length / avgdl))
        best: dict[str, tuple[float, int]] = {}
        for doc, score in scores.items():
            entry, _, doc_weight = self._docs[doc]
            score *= doc_weight
            if entry not in best or score > best[entry][0]:
                best[entry] = (score, doc)
        # An entry also gets part of the weight of the question's words it has outside its
        # best phrasing (a condition in its answer, a word in another similar question).
        total = sum(weights[w] for w in own if w in weights) or 1.0
        ranked: list[tuple[float, str, int, float]] = []
        for entry, (score, doc) in best.items():
            terms, in_doc = self._entry_terms[entry], self._terms[doc]
            spread = sum(weights[w] for w in own if w in terms and w not in in_doc)
            factor = boost.get(entry, 1.0) if boost else 1.0
            covered = self._covered(own, weights, terms)
            ranked.append(((score + SPREAD_WEIGHT * spread) * factor, entry, doc,
                           covered / total))
        ranked.sort(key=lambda r: (-r[0], r[1]))
        return [Match(entry, score, score / (self._self_score(doc, avgdl)
                                             * self._docs[doc][2]), min(1.0, cover))
                for score, entry, doc, cover in ranked[:limit]]

    def _covered(self, words: frozenset[str], weights: Mapping[str, float],
                 terms: set[str]) -> float:
        """The weight of the question's words an entry has: a word whole, or through its
        pinyin, or in part through its characters."""
        covered = 0.0
        for word in words:
            weight = weights.get(word, 0.0)
            if word in terms:
                covered += weight
            elif _CJK.search(word):
                if f"py:{_pinyin(word)[0]}" in terms:
                    covered += 0.8 * weight
                elif len(word) > 1:
                    covered += 0.5 * weight * sum(c in terms for c in word) / len(word)
            elif f"py:{word}" in terms or f"in:{word}" in terms:
                covered += 0.8 * weight
        return covered

    def _self_score(self, doc: int, avgdl: float) -> float:
        length, k1, b = self._docs[doc][1], self.k1, self.b
        return sum(self._weight(word) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / avgdl))
                   for word, tf in self._terms[doc].items()
                   if not word.startswith(("py:", "in:"))) or 1.0

    def features(self, found: list[Match]) -> tuple[float, float, float]:
        """Of the best match: the share of the question it covers, the share of its
        phrasing the question covers, and its margin over the runner-up scaled by the
        lesser of the two (a lone weak match has a margin of 1 and means nothing)."""
        if not found:
            return 0.0, 0.0, 0.0
        best = found[0]
        runner = found[1].score if len(found) > 1 else 0.0
        margin = (best.score - runner) / best.score if best.score > 0 else 0.0
        query, phrasing = best.query_coverage, min(best.coverage, 1.0)
        return query, phrasing, margin * min(query, phrasing)

    def confidence(self, found: list[Match]) -> float:
        """How sure the best match is right, 0..1 (see the module docstring)."""
        if not found:
            return 0.0
        intercept, *weights = self.model
        z = intercept + sum(w * x for w, x in zip(weights, self.features(found), strict=True))
        return 1 / (1 + math.exp(-z))

    def answers(self, found: list[Match]) -> bool:
        """Whether the best match is confident enough to answer with."""
        return self.confidence(found) >= self.answer_at
