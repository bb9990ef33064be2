"""Mining 中文(English) / English(中文) term pairs from markdown text (rag.terms)."""

from __future__ import annotations

import numpy as np

from rag.terms import MIN_SIMILARITY, glossary_from_corpus, mine_term_pairs


def pairs(*texts, encoder=None):
    return {(zh, en): n for zh, en, n in mine_term_pairs(list(texts), encoder)}


def test_half_and_full_width_parentheses():
    got = pairs("输出是特征图(feature map)。", "源域（Source domain）与目标域（Target domain）不同。")
    assert got == {("特征图", "feature map"): 1, ("源域", "Source domain"): 1, ("目标域", "Target domain"): 1}


def test_abbreviation_and_expansion_both_kept():
    got = pairs("常见算法包括支持向量机（Support Vector Machine，SVM）。", "本章介绍卷积神经网络(CNN)。")
    assert got == {("支持向量机", "Support Vector Machine"): 1, ("支持向量机", "SVM"): 1, ("卷积神经网络", "CNN"): 1}


def test_nested_parentheses_are_variants():
    got = pairs("这就是循环神经网络（Recurrent Neural Network (RNN)）的结构。")
    assert got == {("循环神经网络", "Recurrent Neural Network"): 1, ("循环神经网络", "RNN"): 1}


def test_latex_code_and_links_are_not_glosses():
    text = (
        "激活函数$\\sigma(x)$的输出，损失函数$$L(y)=\\log(p)$$，代码`model(inputs)`，"
        "见[链接](https://example.com/a(b))。\n```python\n特征 = 模型(data)\n```\n"
    )
    assert pairs(text) == {}


def test_non_term_parentheticals_are_rejected():
    text = (
        "结果如下(见图5.1)。网络由三层构成(a)。这些方法被称为理性主义方法(Church 2007)。"
        "深度网络(Hinton et al. 2006)。激活函数(ReLU, Sigmoid, Tanh)都很常用。范围(0, 1)。"
    )
    assert pairs(text) == {}


def test_boundary_stops_at_function_words():
    got = pairs("这种方法称为迁移学习(transfer learning)，", "我们使用的是最大池化(max pooling)。")
    assert got == {("迁移学习", "transfer learning"): 1, ("最大池化", "max pooling"): 1}


def test_boundary_shared_by_occurrences_of_the_same_term_wins():
    # "添加批归一化" alone would be a plausible span; the other occurrence shows where the term starts.
    got = pairs("什么是批归一化(Batch Normalization)？", "每个卷积层后添加批归一化(batch normalization)。")
    assert got == {("批归一化", "Batch Normalization"): 2}


def test_english_then_chinese():
    got = pairs("FPN 使用 later connection(横向连接) 融合特征，EM(期望最大化)算法。")
    assert got == {("横向连接", "later connection"): 1, ("期望最大化", "EM"): 1}


def test_glossary_merges_variants_by_chinese_term():
    texts = ["卷积神经网络(CNN)很常用。", "卷积神经网络(CNN)与卷积神经网络（Convolutional Neural Network）。"]
    assert glossary_from_corpus(texts) == [("卷积神经网络", ["CNN", "Convolutional Neural Network"])]


class TableEncoder:
    """Vectors from a table: texts sharing a label are identical, others orthogonal."""

    def __init__(self, labels):
        self.labels = labels

    def encode(self, texts):
        names = sorted(set(self.labels.values()))
        out = np.zeros((len(texts), len(names) + len(texts)), dtype=np.float32)
        for i, t in enumerate(texts):
            out[i, names.index(self.labels[t]) if t in self.labels else len(names) + i] = 1.0
        return out


def test_encoder_similarity_picks_the_boundary_and_drops_non_translations():
    enc = TableEncoder({"求和池化": "sum", "Sum Pooling": "sum"})
    text = "常见的有最大池化和求和池化(Sum Pooling)，若预训练模型(ImageNet)可用。"
    assert MIN_SIMILARITY > 0
    assert pairs(text, encoder=enc) == {("求和池化", "Sum Pooling"): 1}
    # an acronym is kept by the lexical rules whatever its similarity
    assert pairs("本章介绍卷积神经网络(CNN)。", encoder=enc) == {("卷积神经网络", "CNN"): 1}


def test_latin_letters_in_front_of_the_term_belong_to_it():
    got = pairs("由简化的U形模块（TUM）组成。", "这是 Laplace 分布（Laplace distribution）。", "使用ReLU激活函数(activation function)，激活函数很重要。")
    assert got == {("U形模块", "TUM"): 1, ("Laplace 分布", "Laplace distribution"): 1, ("激活函数", "activation function"): 1}
