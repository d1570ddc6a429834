"""Words for _unknown_ negatives: a general English vocabulary and, for each keyword, the
phonetically close words (same onset or same rhyme, by spelling) that a model confuses most."""
from __future__ import annotations

GENERAL_WORDS = tuple("""
about above across after again against air all almost alone along already also always among and
animal another answer any apple area around art ask away baby back bad bag ball bank bed bird
black blue board boat body book both box boy bread break bring brother brown build busy buy call
calm camera car care carry case cat catch center chair change check child city class clean clear
clock close cloud coat coffee cold color come common cook cool copy corner count country course
cover cup cut dance dark day dead deep desk dinner dish doctor dog door down draw dream dress
drink drive dry early earth east easy eat edge egg eight empty end enough even evening every eye
face fact fall family far farm fast father feel few field fight fill find fine fire first fish
five floor flower fly follow food foot forest forget form four free fresh friend front fruit
full game garden gate give glass gold good grass great green ground group grow hair half hand
happy hard hat have head hear heart heavy hello help here high hill hold home hope horse hot
hour house how hundred idea inside iron island jump just keep key kind king kitchen knife know
lake land large last late laugh lead learn leave letter light line lion listen little long look
love low lunch machine magic main make man many map market matter may mean meet middle milk mind
minute money month moon morning mother mountain move music name near neck need never new next
nice night nine noise north nose note number ocean office often oil old open orange order other
page paint paper park party pass pay pencil people picture piece place plan plant play please
pocket point power pretty problem pull push queen question quick quiet radio rain read ready red
remember rest rice rich ride ring river road rock room round rule run safe salt same sand save
say school sea second see seven shape share ship shoe short show side sign simple sing sister
sit six sky sleep slow small smile snow soft some song soon sound south space speak spring square
star start station step still stone store story street strong sugar summer sun table take talk
tall tea teacher team ten thank thing think three time today together tomorrow tonight tool top
town train tree true turn twelve two under until valley very voice wait walk wall want warm wash
watch water wave way weather week welcome west wheel white whole wide wind window winter wish
woman wonder wood word work world write year yellow young zero
""".split())

EXTRA_CLOSE = tuple("""
commuter compute computed computing comparing compass compost compass commute complete comic
combo comet comma commit common compound counter scooter cuter neuter pewter tutor suitor
yet yellow yes yeah less mess bless guess press dress chess nest test
know no go so though toe snow slow grow low show note
app pup cup sup top hop shop stop step stomp stock stuck
town gown clown brown crown round down sound found drown
lift left loft laugh leaf lefty heft theft deft
right write light bright might night fight kite bite rite
on in an un one own upon onto
of off often cough awful offer
go goal goat ghost gone got though grow toe
""".split())

ONSET_LETTERS = 2
RHYME_LETTERS = 3


def close_words(keyword: str, vocabulary: tuple[str, ...] = GENERAL_WORDS + EXTRA_CLOSE) -> list[str]:
    """Words sharing the keyword's onset (first letters) or rhyme (last letters), never the keyword."""
    kw = keyword.lower()
    onset, rhyme = kw[:ONSET_LETTERS], kw[-RHYME_LETTERS:] if len(kw) > RHYME_LETTERS else kw[-2:]
    words = {w for w in vocabulary if w != kw and (w.startswith(onset) or w.endswith(rhyme))}
    return sorted(words)


def negative_vocabulary(keywords: list[str]) -> tuple[list[str], list[str]]:
    """(close words of all keywords, general words), neither containing a keyword."""
    kws = {k.lower() for k in keywords}
    close = sorted({w for k in kws for w in close_words(k)} - kws)
    general = sorted(set(GENERAL_WORDS) - kws - set(close))
    return close, general
