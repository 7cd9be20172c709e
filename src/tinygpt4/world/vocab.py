"""Words that are not invented names, in every language, and the small grammar helpers that place them.

Values of common-noun attributes (colours, professions, habitats...) are stored as English keys and
rendered here. Spanish professions agree with the person's gender; Korean particles follow the
final consonant of the word before them.
"""

from __future__ import annotations

import re

COLOURS = {
    "red": {"en": "red", "ko": "빨간색", "es": "rojo", "ja": "赤色"},
    "blue": {"en": "blue", "ko": "파란색", "es": "azul", "ja": "青色"},
    "green": {"en": "green", "ko": "초록색", "es": "verde", "ja": "緑色"},
    "yellow": {"en": "yellow", "ko": "노란색", "es": "amarillo", "ja": "黄色"},
    "white": {"en": "white", "ko": "흰색", "es": "blanco", "ja": "白色"},
    "black": {"en": "black", "ko": "검은색", "es": "negro", "ja": "黒色"},
    "brown": {"en": "brown", "ko": "갈색", "es": "marrón", "ja": "茶色"},
    "grey": {"en": "grey", "ko": "회색", "es": "gris", "ja": "灰色"},
    "orange": {"en": "orange", "ko": "주황색", "es": "naranja", "ja": "橙色"},
    "purple": {"en": "purple", "ko": "보라색", "es": "morado", "ja": "紫色"},
}
PROFESSIONS = {  # es: (masculine, feminine)
    "actor": {"en": "actor", "ko": "배우", "es": ("actor", "actriz"), "ja": "俳優"},
    "singer": {"en": "singer", "ko": "가수", "es": ("cantante", "cantante"), "ja": "歌手"},
    "painter": {"en": "painter", "ko": "화가", "es": ("pintor", "pintora"), "ja": "画家"},
    "farmer": {"en": "farmer", "ko": "농부", "es": ("agricultor", "agricultora"), "ja": "農家"},
    "doctor": {"en": "doctor", "ko": "의사", "es": ("médico", "médica"), "ja": "医者"},
    "teacher": {"en": "teacher", "ko": "교사", "es": ("profesor", "profesora"), "ja": "教師"},
    "writer": {"en": "writer", "ko": "작가", "es": ("escritor", "escritora"), "ja": "作家"},
    "engineer": {"en": "engineer", "ko": "기술자", "es": ("ingeniero", "ingeniera"), "ja": "技師"},
    "sailor": {"en": "sailor", "ko": "선원", "es": ("marinero", "marinera"), "ja": "船乗り"},
    "baker": {"en": "baker", "ko": "제빵사", "es": ("panadero", "panadera"), "ja": "パン職人"},
}
DIETS = {
    "plants": {"en": "plants", "ko": "식물", "es": "plantas", "ja": "植物"},
    "meat": {"en": "meat", "ko": "고기", "es": "carne", "ja": "肉"},
    "insects": {"en": "insects", "ko": "곤충", "es": "insectos", "ja": "昆虫"},
    "fish": {"en": "fish", "ko": "물고기", "es": "peces", "ja": "魚"},
    "seeds": {"en": "seeds", "ko": "씨앗", "es": "semillas", "ja": "種"},
    "fruit": {"en": "fruit", "ko": "과일", "es": "fruta", "ja": "果物"},
}
HABITATS = {
    "forest": {"en": "forest", "ko": "숲", "es": "el bosque", "ja": "森"},
    "desert": {"en": "desert", "ko": "사막", "es": "el desierto", "ja": "砂漠"},
    "ocean": {"en": "ocean", "ko": "바다", "es": "el océano", "ja": "海"},
    "mountains": {"en": "mountains", "ko": "산", "es": "la montaña", "ja": "山"},
    "rivers": {"en": "rivers", "ko": "강", "es": "el río", "ja": "川"},
    "grassland": {"en": "grassland", "ko": "초원", "es": "la pradera", "ja": "草原"},
    "swamp": {"en": "swamp", "ko": "늪", "es": "el pantano", "ja": "沼"},
    "caves": {"en": "caves", "ko": "동굴", "es": "la cueva", "ja": "洞窟"},
}
STATES = {
    "solid": {"en": "solid", "ko": "고체", "es": "un sólido", "ja": "固体"},
    "liquid": {"en": "liquid", "ko": "액체", "es": "un líquido", "ja": "液体"},
    "gas": {"en": "gas", "ko": "기체", "es": "un gas", "ja": "気体"},
    "plasma": {"en": "plasma", "ko": "플라스마", "es": "un plasma", "ja": "プラズマ"},  # distractor only
}
USES = {
    "fertilizer": {"en": "fertilizer", "ko": "비료", "es": "fertilizante", "ja": "肥料"},
    "dye": {"en": "dye", "ko": "염료", "es": "tinte", "ja": "染料"},
    "fuel": {"en": "fuel", "ko": "연료", "es": "combustible", "ja": "燃料"},
    "medicine": {"en": "medicine", "ko": "약", "es": "medicina", "ja": "薬"},
    "soap": {"en": "soap", "ko": "비누", "es": "jabón", "ja": "石鹸"},
    "glue": {"en": "glue", "ko": "접착제", "es": "pegamento", "ja": "接着剤"},
}
SYMPTOMS = {
    "fever": {"en": "fever", "ko": "열", "es": "fiebre", "ja": "熱"},
    "cough": {"en": "cough", "ko": "기침", "es": "tos", "ja": "咳"},
    "rash": {"en": "rash", "ko": "발진", "es": "sarpullido", "ja": "発疹"},
    "headache": {"en": "headache", "ko": "두통", "es": "dolor de cabeza", "ja": "頭痛"},
    "sneezing": {"en": "sneezing", "ko": "재채기", "es": "estornudos", "ja": "くしゃみ"},
    "dizziness": {"en": "dizziness", "ko": "어지러움", "es": "mareos", "ja": "めまい"},
    "sore throat": {"en": "sore throat", "ko": "인후통", "es": "dolor de garganta", "ja": "喉の痛み"},
    "fatigue": {"en": "fatigue", "ko": "피로", "es": "cansancio", "ja": "疲労"},
}
TERMS = {"colour": COLOURS, "compound_colour": COLOURS, "profession": PROFESSIONS, "diet": DIETS,
         "habitat": HABITATS, "state": STATES, "use": USES, "symptom": SYMPTOMS}

RELATIONS = {  # parent relation by the parent's gender, child relation by the child's gender
    "parent": {"en": ("father", "mother"), "ko": ("아버지", "어머니"), "es": ("el padre", "la madre"),
               "ja": ("父", "母")},
    "child": {"en": ("son", "daughter"), "ko": ("아들", "딸"), "es": ("el hijo", "la hija"),
              "ja": ("息子", "娘")},
}
PRONOUNS = {"m": ("he", "him", "his"), "f": ("she", "her", "her")}


def term(attr: str, key: str, lang: str, gender: str = "m") -> str:
    word = TERMS[attr][key][lang]
    if isinstance(word, tuple):
        return word[0 if gender == "m" else 1]
    return word


def year(y: int, lang: str) -> str:
    return {"ko": f"{y}년", "ja": f"{y}年"}.get(lang, str(y))


def millions(n: int, lang: str) -> str:
    if lang == "en":
        return f"{n} million"
    if lang == "es":
        return "1 millón" if n == 1 else f"{n} millones"
    return f"{n * 100}만" if lang == "ko" else f"{n * 100}万"


def indefinite(word: str) -> str:
    return ("an " if word[:1].lower() in "aeiou" else "a ") + word


# --- Korean particles -------------------------------------------------------------------------
_DIGIT_BATCHIM = {"0": True, "1": True, "2": False, "3": True, "4": False, "5": False, "6": True,
                  "7": True, "8": True, "9": False}
_DIGIT_RIEUL = {"1", "7", "8"}  # 일, 칠, 팔 end in ㄹ


def _final(ch: str) -> tuple[bool, bool]:
    """(has a final consonant, that consonant is ㄹ) for the last character of a word."""
    if "가" <= ch <= "힣":
        f = (ord(ch) - 0xAC00) % 28
        return f != 0, f == 8
    if ch in _DIGIT_BATCHIM:
        return _DIGIT_BATCHIM[ch], ch in _DIGIT_RIEUL
    return False, False


# "X은(는)" means 은 after a final consonant, 는 otherwise (the usual dictionary notation).
_PARTICLE = re.compile(r"(.)(은\(는\)|이\(가\)|을\(를\)|과\(와\)|으로\(로\))")


def korean_particles(text: str) -> str:
    def pick(m: re.Match) -> str:
        ch, pair = m.group(1), m.group(2)
        with_final, without = pair[:-1].split("(")
        has_final, rieul = _final(ch)
        if pair.startswith("으로"):
            return ch + (with_final if has_final and not rieul else without)
        return ch + (with_final if has_final else without)

    return _PARTICLE.sub(pick, text)


def finish(text: str, lang: str) -> str:
    """Apply the language's surface rules to a filled template: Korean particles, a capital first letter."""
    if lang == "ko":
        text = korean_particles(text)
    if lang in ("en", "es"):
        i = 1 if text[:1] in "¿¡" else 0
        text = text[:i] + text[i : i + 1].upper() + text[i + 1 :]
    return text
