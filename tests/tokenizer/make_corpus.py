#!/usr/bin/env python3
"""Writes the tokenizer conformance corpus (tests/tokenizer/corpus/*.txt).

Each file is one text that the conformance test encodes with rlfr and with the
Hugging Face library and compares. Files are raw bytes: one holds invalid
UTF-8 on purpose. Run: python3 tests/tokenizer/make_corpus.py
"""
import os

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus")

cases = {
    "prose": "The quick brown fox jumps over the lazy dog. It's 5 o'clock; we'll see what they've DONE "
             "(or haven't). Mr. O'Neil said: \"Don't!\" -- then left...\nSecond paragraph,  with  double spaces.\n",
    "latex": r"Let $f(x) = \frac{x^2 - 1}{x + 1}$ for $x \neq -1$. Then $\lim_{x \to -1} f(x) = -2$, "
             r"so the answer is $\boxed{-2}$. Also \[ \sum_{k=1}^{n} k^2 = \frac{n(n+1)(2n+1)}{6} \] "
             r"and $\dfrac{\sqrt{3}}{2}\left(\pi r^2\right)$, $a_{ij}\cdot b^{T}$, \text{if } x\geq 0." + "\n",
    "code": "int main(void) {\n\tfor (int i = 0; i < 10; i++) {\r\n\t\tprintf(\"%d\\n\", i);\r\n\t}\n"
            "    return 0;\r}\n\n\n# python\ndef f(x):\n    return x**2  # square\n\t\t \n",
    "cjk": "机器学习是人工智能的一个分支。東京は日本の首都です。한국어 문장도 포함합니다。"
           "数学：设 x＝３，求 x² 的值。全角ＡＢＣ１２３と半角ABC123。\n",
    "arabic": "مرحبا بالعالم! هذه جملة عربية، مع أرقام ١٢٣ و 456. "
              "النص العربي يُكتب من اليمين إلى اليسار.\n",
    "emoji": "Family: 👨‍👩‍👧‍👦, flags 🇫🇷🇯🇵, skin 👍🏽, heart ❤️, "
             "keycap 1️⃣, rainbow flag 🏳️‍🌈, mixed text😀end 🤖🚀✨\n",
    "combining": "Decomposed: e\u0301 a\u0300 o\u0308 n\u0303 A\u030a; precomposed: é à ö ñ Å; "
                 "stacked: q\u0307\u0323 \u1100\u1161\u11a8 Ω K \u212b ﬁ ＡＢ\n",
    "digits": "3.14159265358979 1234567890123456789 0000 007 2024-11-26 1,234,567.89 "
              "12th 1st 1e-10 0x1F 𝟙𝟚𝟛 ²³ ½ Ⅻ\n",
    "whitespace": "a" + " " * 40 + "b\n\n\n\n" + "\t" * 12 + "c   \n   \n" + " " * 100 + "\r\n\r\n  d\u00a0e\u3000f\u2003g \u2028h\n" + " " * 7,
    "special": "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
               "<|im_start|>assistant\nIt is <|endoftext|>4.<|im_end|>x<|im_end|><|im_start|><|im_end"
               " text <|endoftext|><|endoftext|>\n",
    "empty": "",
    "mixed": "Hello世界🌍! Café naïve résumé coöperate — “quotes” ‘single’ «guillemets» … ™ © ® € £ ¥\n"
             "Русский текст. Ελληνικά. עברית. हिन्दी भाषा. ไทย.\n",
    "contractions": "I'M YOU'RE he's she'S it'll WE'VE they'd I'd've o'clock rock'n'roll 'quoted' '' ' s\n",
    "single_space": " ",
    "newlines_only": "\n\r\n\r\r\n\n",
}

invalid = (b"valid start \xff\xfe then \xc3\x28 bad pair, truncated \xe2\x82 and \xf0\x9f\x98 end, "
           b"overlong \xc0\xaf, surrogate \xed\xa0\x80, lone cont \x80\x80\x80, ok \xc3\xa9\n")

os.makedirs(OUT, exist_ok=True)
for i, (name, text) in enumerate(cases.items()):
    with open(os.path.join(OUT, "%02d_%s.txt" % (i, name)), "wb") as f:
        f.write(text.encode("utf-8"))
with open(os.path.join(OUT, "%02d_invalid_utf8.txt" % len(cases)), "wb") as f:
    f.write(invalid)
