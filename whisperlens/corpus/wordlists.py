"""Shipped English vocabulary for the sentence grammar in `text.py`.

Plain, everyday words chosen so that every one of the 39 ARPAbet phones occurs many times
(ZH, OY and UH on purpose: measure, voice, wooden). Every word is in pocketsphinx's
CMUdict, so that sentences can be cross-checked with its forced aligner; a test checks this.
"""

NOUNS = """
apple arm baby bag ball band bank basket bath beach bean bear bed bell belt bench bicycle
bird blanket boat bone book boot bottle bowl box boy branch bread bridge brother brush
bucket bus butter button cabin cake camera candle cap car card carpet castle cat chain
chair cheese cherry chicken child church circle city clock cloud coat coin collar cook
corn cottage cow cup curtain cushion daughter desk dinner doctor dog doll door dragon
dress drum duck eagle egg elephant engine face farmer feather fence field finger fire
fish flag flower fog foot forest fork fox frog garage garden gate giant girl glass glove
goat gold grape grass guitar hammer hand hat hill horse house island jacket jar jewel
judge kettle key king kitchen knife ladder lake lamp leaf leather lemon letter library
lion lizard lock machine map market measure meadow message milk mirror money monkey
moon mother mountain mouse mouth mushroom nail needle nest net nurse ocean office oven
owl pail painter paper parcel pencil penny pepper piano picture pig pillow pilot pipe
plate pocket pond potato pudding pumpkin puppy queen rabbit radio rain ring river road
robot rock roof room rope rose sailor sandwich saucer school scissors sheep shell ship
shirt shoe shovel singer sister soldier soup spoon square stamp star station stick stone
storm stove street sugar sun sweater table teacher teapot television tent thief thread
thumb ticket tiger toast toy tractor train treasure tree truck tunnel turtle umbrella
valley vase village violin voice wagon wall wallet watch water wheel whistle window
wing wolf woman wood worm yard zebra garlic orange pearl jungle canyon harbor helmet
closet chimney oyster squirrel pebble saddle pillar noodle barrel ribbon
journal anchor blossom tower vision pleasure beige lantern mitten puzzle
""".split()

NAMES = """
anna ben carol david emma frank grace henry irene jack julia kevin laura martin nora
oliver paul rachel sam sophie thomas victor walter zoe george lucy peter alice joseph
maria daniel ruth james helen arthur diana edward rose simon clara hugo nancy roger
""".split()

ADJECTIVES = """
big small old young happy sad tall short long red blue green yellow brown black white
gray pink purple golden silver wooden quiet loud soft hard warm cold hot cool wet dry
heavy light bright dark clean dirty empty full fresh rich poor strong weak thick thin
sharp round square smooth rough sweet sour bitter salty busy lazy brave shy clever
gentle noisy calm wild tiny huge cheap famous strange friendly lonely hungry thirsty
sleepy angry careful honest polite curious nervous proud lucky usual royal shiny dusty
muddy rusty frozen narrow wide deep shallow plain fancy fluffy crooked broken hollow
""".split()

# Past tense, used with an object.
TRANSITIVE_VERBS = """
found lost saw painted carried dropped bought sold washed cleaned opened closed pushed
pulled kicked caught threw lifted moved fixed built broke cooked baked ate drank read
wrote drew chose hid held kept left liked loved watched touched wanted needed used
visited followed packed wrapped filled emptied counted measured joined enjoyed pointed
borrowed brought cut dug fed grabbed hugged hit fetched mended noticed ordered pinched
polished raised rolled rubbed searched shook showed sorted spilled stirred swept tied
traded weighed rescued chased climbed crossed guarded hunted
""".split()

# Past tense, no object.
INTRANSITIVE_VERBS = """
laughed smiled cried slept waited jumped danced sang shouted whispered walked ran swam
sailed rested stayed arrived returned vanished appeared fell stopped started wandered
listened nodded shivered sneezed yawned paused giggled hurried trembled
""".split()

ADVERBS = """
quickly slowly quietly loudly gently happily sadly carefully suddenly softly often
always never today yesterday again early late outside inside upstairs downstairs
together alone badly bravely calmly eagerly easily
""".split()

PREPOSITIONS = "in on under near behind beside above below inside across along over by".split()

DETERMINERS = "the a this that my your his her our their one every".split()

PLACES = """
the kitchen the garden the market the forest the river the village the station the
school the library the beach the office the harbor the valley the church the castle
""".split("the")[1:]
PLACES = ["the " + place.strip() for place in PLACES if place.strip()]

TIMES = """
in the morning|at night|after dinner|before lunch|on sunday|on monday|every day|last week|
at noon|in the evening|last summer|next winter|this autumn|at dawn
""".replace("\n", "").split("|")
TIMES = [time for time in TIMES if time]
