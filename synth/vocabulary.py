"""Words for ``_unknown_`` negatives: a general English vocabulary and, for each keyword, its
phonetic neighbours (same onset or same rhyme, by spelling and by espeak-ng's phonemes), the words
a keyword model confuses most. Homophones of a keyword are never negatives."""
from __future__ import annotations

from typing import Mapping, Sequence

GENERAL_WORDS = tuple("""
a able about above accept across act add after again against age ago agree air alarm alert alexa
alive all allow almost alone along already also always amazing among and angle angry animal annoy
another answer any apartment appear apple area arm army around arrive art ask assistant attic autumn
away baby back backward bacon bad bag ball banana band bank basket battery beach bean bear beat
beauty become bed before begin behind believe bell below bench best better between big bike bill
bird bit bitter black blanket blender blue board boat body book boot both bottle bottom bounce bowl
box boy brain branch brave bread break bridge brief bright bring broken brother brown bucket budget
bug build busy but butter button buy cabin cable cake calendar call calm camera camp can candle
candy canyon captain car care carpet carry case castle cat catch cattle ceiling cellar center chair
change channel cheap check cheese chicken child chimney circle city class clean clear climb clock
close closet cloud coast coat coffee cold collar color column comb come comfort comma commerce
common compact company compare complain complete concert condition confirm connect contact content
continue control conversation cook cool copper copy corner corridor costume cotton couch count
counter country couple course cousin cover cozy crazy cricket crisp crowd cruise cup curtain cushion
cut dance dark day dead deep desk dial diamond different dim dinner direct dish doctor dog dollar
door double down dozen dragon draw drawer dream dress drink drive driver dry dust eagle early earth
east easy eat edge egg eight elbow elevator eleven empty end engine enough enter error even evening
every exit eye face fact fall family fancy far farm fast father feel fever few field fifteen fifty
fight fill filter find fine finger finish fire first fish five flag flat flip floor flower fly
folder follow food foot forest forget form forty forward four free fresh friend front frozen fruit
full funny future game garage garden garlic gate gentle giant ginger giraffe give glass glove go
gold good grandma grass gravy great green ground group grow guitar hair half hammer hand handle
happen happy harbor hard hat have he head hear heart heater heavy helicopter hello help here hidden
high hill history hobby hold holiday home honest honey hope horse hot hotel hour house how hundred
hungry hurry idea inside iron is island it jacket jelly jump jungle just keep kettle key kind king
kitchen kitten knife know ladder lake lamp land laptop large last late later laugh lead learn leave
left lemon lesson letter level library light line lion listen little lizard lobby locker long look
love low lucky lunch machine magic magnet main make man mango many map marble marker market marvin
matter may me meadow mean medal meet melon member memory message metal middle milk mind minute
mirror mister mobile model modern moment money monitor monkey month moon morning mother motor
mountain mouse move muffin muscle music my name napkin narrow nature near neck need needle network
never new next nice nickel night nine no noise noodle normal north nose not note nothing novel
number nurse ocean off office often oil old on one open orange order other oven page paint paper
park party pass pattern pay pencil people pepper phone piano pickle picture piece pillow pilot pizza
place plan planet plant plastic play please pocket point polite potato powder power pretty printer
problem promise pull pumpkin puppy push puzzle queen question quick quiet rabbit racket radio rain
ranger razor read ready record red remember remote repeat rescue rest rice rich ride right ring
river road robot rock rocket roller room round rubber rule run safe salad salt same sand sandwich
save say scatter school scissors scooter sea second see seven shadow shape share she sheila shelter
ship shoe short show shower side sign signal silver simple sing sister sit six skater sky sleep
slipper slow small smile snow soccer socket sofa soft some song soon sound south space speak speaker
spider spring square star start station step sticker still stone stop store story street strong
sugar summer sun supper switch system table tablet tailor take talk tall tea teacher team temper ten
tender thank that the thermostat they thing think this three thunder ticket time timer toaster today
together tomato tomorrow tonight tool top tower town tractor train tree true trumpet tunnel turn
turtle twelve twenty two umbrella under until up upper valley velvet very video village visual voice
volume wait waiter walk wall wallet want warm wash watch water wave way we weather week welcome west
what wheel when where white who whole why wide will wind window winter wish wizard woman wonder wood
word work world wow write year yellow yes you young your zebra zero zipper
""".split())

CLOSE_WORDS = tuple("""
an app awful bite bless chess clown combo comet commit commute commuter comparing compass compost
compound compute computed computing cop cough crown cuter deft drown found frown ghost goal goat
gone got gown guess heft hooter hop in kite knob leaf lefty less lift list loft looter lost mess
might mop mutter nest neuter nod nope of offer onto own pewter pop press pup rite rooter router row
shooter shop stock stomp stuck suitor sup test theft though toe tutor un upon yeah yell yep yet
""".split())

# Words that sound like another: never an _unknown_ example for a keyword they sound like.
HOMOPHONES = (
    {"no", "know"}, {"right", "write", "rite"}, {"four", "for", "fore"}, {"two", "to", "too"},
    {"one", "won"}, {"eight", "ate"}, {"hear", "here"}, {"see", "sea"}, {"by", "buy", "bye"},
    {"new", "knew"}, {"night", "knight"}, {"sun", "son"}, {"wood", "would"}, {"week", "weak"},
    {"hour", "our"}, {"whole", "hole"}, {"wait", "weight"}, {"way", "weigh"}, {"meet", "meat"},
    {"piece", "peace"}, {"road", "rode"}, {"be", "bee"}, {"some", "sum"}, {"flower", "flour"},
    {"tea", "tee"}, {"break", "brake"}, {"mail", "male"}, {"sale", "sail"}, {"tail", "tale"},
)
VOWEL_LETTERS = "aeiou"
MIN_ONSET_LETTERS = 2
MIN_RHYME_LETTERS = 3
STRESS_MARKS = "',%="
VOWEL_PHONEME_START = "aeiouAEIOUV@3"
# Phoneme strings at most this far apart (edits) are neighbours too, by keyword length in phonemes.
EDIT_DISTANCE_BY_LENGTH = ((6, 2), (3, 1))


def _vowel_groups(word: str) -> list[tuple[int, int]]:
    groups, i = [], 0
    while i < len(word):
        # 'y' after a consonant sounds as a vowel (my, happy), at the start it does not (yes)
        is_vowel = word[i] in VOWEL_LETTERS or (word[i] == "y" and i > 0 and word[i - 1] not in VOWEL_LETTERS)
        if is_vowel:
            j = i + 1
            while j < len(word) and word[j] in VOWEL_LETTERS:
                j += 1
            groups.append((i, j))
            i = j
        else:
            i += 1
    return groups


def spelling_onset(word: str) -> str:
    """Leading consonants plus the first vowel letters ('computer' -> 'co', 'stop' -> 'sto')."""
    w = word.lower()
    groups = _vowel_groups(w)
    end = groups[0][1] if groups else len(w)
    return w[:max(end, min(MIN_ONSET_LETTERS, len(w)))]


def spelling_rhyme(word: str) -> str:
    """The last vowel letters and what follows, at least MIN_RHYME_LETTERS long for longer words
    ('computer' -> 'ter', 'down' -> 'own', 'go' -> 'o')."""
    w = word.lower()
    groups = _vowel_groups(w)
    start = groups[-1][0] if groups else 0
    return w[min(start, max(0, len(w) - MIN_RHYME_LETTERS)) if len(w) > MIN_RHYME_LETTERS else start:]


def close_words(keyword: str, vocabulary: Sequence[str] = GENERAL_WORDS + CLOSE_WORDS) -> list[str]:
    """Words sharing the keyword's spelled onset or rhyme; never the keyword or its homophones."""
    kw = keyword.lower()
    onset, rhyme = spelling_onset(kw), spelling_rhyme(kw)
    words = {w for w in vocabulary if w.startswith(onset) or w.endswith(rhyme)}
    return sorted(words - {kw} - homophones(kw))


def homophones(word: str) -> set[str]:
    """Other spellings of the same sound from the built-in table."""
    return set().union(*(group for group in HOMOPHONES if word in group)) - {word}


def _plain(phones: Sequence[str]) -> tuple[str, ...]:
    return tuple(p.strip(STRESS_MARKS) for p in phones if p.strip(STRESS_MARKS))


def _is_vowel(phone: str) -> bool:
    return phone.strip(STRESS_MARKS)[:1] in VOWEL_PHONEME_START


def phoneme_onset(phones: Sequence[str]) -> tuple[str, ...]:
    """Phonemes up to and including the first vowel."""
    for i, p in enumerate(phones):
        if _is_vowel(p):
            return _plain(phones[:i + 1])
    return _plain(phones)


def phoneme_rhyme(phones: Sequence[str]) -> tuple[str, ...]:
    """Phonemes from the last stressed vowel (else the last vowel) to the end."""
    stressed = [i for i, p in enumerate(phones) if _is_vowel(p) and p.startswith("'")]
    vowels = [i for i, p in enumerate(phones) if _is_vowel(p)]
    start = stressed[-1] if stressed else (vowels[-1] if vowels else 0)
    return _plain(phones[start:])


def edit_distance(a: Sequence[str], b: Sequence[str]) -> int:
    """Levenshtein distance between two phoneme (or letter) sequences."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def phonetic_neighbours(keyword: str, table: Mapping[str, Sequence[str]]) -> list[str]:
    """Words of ``table`` (word -> phonemes, the keyword among them) sharing the keyword's phoneme
    onset or rhyme, or a few phoneme edits away; homophones (same phonemes) excluded."""
    kw = table.get(keyword)
    if not kw:
        return []
    onset, rhyme, plain = phoneme_onset(kw), phoneme_rhyme(kw), _plain(kw)
    max_edits = next((d for n, d in EDIT_DISTANCE_BY_LENGTH if len(plain) >= n), 0)
    out = []
    for word, phones in table.items():
        p = _plain(phones)
        if word == keyword or p == plain:
            continue
        close = phoneme_onset(phones) == onset and len(onset) > 1  # a lone vowel onset is too weak
        close = close or phoneme_rhyme(phones) == rhyme
        close = close or (max_edits and edit_distance(p, plain) <= max_edits)
        if close:
            out.append(word)
    return sorted(out)


def negative_vocabulary(keywords: Sequence[str], table: Mapping[str, Sequence[str]] | None = None
                        ) -> tuple[list[str], list[str], list[str]]:
    """(close words, general words, keyword parts) for _unknown_: close = phonetic neighbours of any
    keyword (spelling, plus phonemes when ``table`` is given), parts = the single words and partial
    phrases of multi-word keywords. None of them is a keyword or sounds like one."""
    kws = [k.lower() for k in keywords]
    banned = set(kws).union(*(homophones(k) for k in kws))
    if table:
        kw_phones = {_plain(table[k]) for k in kws if k in table}
        banned |= {w for w, p in table.items() if _plain(p) in kw_phones}
    close: set[str] = set()
    for k in kws:
        close.update(close_words(k))
        if table:
            close.update(phonetic_neighbours(k, table))
    parts: set[str] = set()
    for k in kws:
        tokens = k.split()
        if len(tokens) > 1:
            parts.update(" ".join(tokens[i:j]) for i in range(len(tokens)) for j in range(i + 1, len(tokens) + 1))
    close -= banned
    parts -= banned
    general = set(GENERAL_WORDS) - banned - close - parts
    return sorted(close), sorted(general), sorted(parts)
