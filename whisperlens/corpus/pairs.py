"""Shipped word pairs: English minimal pairs and English/Spanish translation pairs.

The minimal pairs were found in CMUdict (pocketsphinx's copy) as word pairs of equal length
differing in exactly one phone, drawn round-robin over contrasts so that 284 distinct
contrasts appear; a test re-derives each pair's contrast from the dictionary.
"""

# english_a english_b phone_a phone_b position-of-the-contrast
MINIMAL_PAIRS = [tuple(line.split()) for line in """
mop map AA AE medial
cot cut AA AH medial
not nut AA AH medial
bard bored AA AO medial
caught kite AA AY medial
hot hate AA EY medial
cot kit AA IH medial
hot heat AA IY medial
caught coat AA OW medial
god good AA UH medial
bought boot AA UW medial
bag bug AE AH medial
cab cub AE AH medial
lass loss AE AO medial
mass mouse AE AW medial
fan fine AE AY medial
man men AE EH medial
tan ten AE EH medial
fat fate AE EY medial
bad bid AE IH medial
pat pit AE IH medial
fat feet AE IY medial
had hood AE UH medial
sung song AH AO medial
cut kite AH AY medial
nut net AH EH medial
hut hurt AH ER medial
hut hate AH EY medial
bud bid AH IH medial
puck pick AH IH medial
bud bead AH IY medial
cut coat AH OW medial
buck book AH UH medial
hut hoot AH UW medial
moss mouse AO AW medial
loss lice AO AY medial
loss less AO EH medial
call curl AO ER medial
wall wail AO EY medial
moss miss AO IH medial
fall feel AO IY medial
ball bowl AO OW medial
all oil AO OY initial
ball bull AO UH medial
fall fool AO UW medial
bowed bide AW AY medial
down den AW EH medial
bowed bird AW ER medial
our her AW HH initial
mouse miss AW IH medial
how he AW IY final
bowed bode AW OW medial
owl oil AW OY initial
bide bed AY EH medial
rice race AY EY medial
irene green AY G initial
hide hid AY IH medial
bide bead AY IY medial
tie toe AY OW final
buy boy AY OY final
hide hood AY UH medial
site suit AY UW medial
rib rich B CH final
bug dug B D initial
ben then B DH initial
bait fate B F initial
bowl goal B G initial
bang hang B HH initial
bat hat B HH initial
rib ridge B JH final
ball call B K initial
bin kin B K initial
bait late B L initial
ban man B M initial
cub come B M final
bet net B N initial
rib ring B NG final
bad pad B P initial
big pig B P initial
bed read B R initial
bag sag B S initial
bit sit B S initial
bin shin B SH initial
ban tan B T initial
boy toy B T initial
buy thigh B TH initial
bet wet B W initial
bard yard B Y initial
robe rose B Z final
beach bead CH D final
chair their CH DH initial
cherry ferry CH F initial
etch egg CH G final
etch edge CH JH final
chain cane CH K initial
chews lose CH L initial
chop mop CH M initial
beach bean CH N final
rich ring CH NG final
chin pin CH P initial
chip rip CH R initial
chin shin CH SH initial
chin tin CH T initial
batch bath CH TH final
cherry very CH V initial
chair where CH W initial
chip zip CH Z initial
day they D DH initial
sailed sailor D ER final
dry fry D F initial
date gate D G initial
pad pack D K final
date late D L initial
doe low D L initial
den men D M initial
bud bun D N final
had hang D NG final
den pen D P initial
doe row D R initial
mad mass D S final
deep sheep D SH initial
bad bat D T final
dug tug D T initial
drew threw D TH initial
weighed wave D V final
daughter water D W initial
door your D Y initial
hid his D Z final
though low DH L initial
that mat DH M initial
then pen DH P initial
though row DH R initial
their share DH SH initial
then ten DH T initial
that vat DH V initial
their where DH W initial
pepper paper EH EY medial
bed bid EH IH medial
mess miss EH IH medial
men mean EH IY medial
bet boat EH OW medial
set soot EH UH medial
set suit EH UW medial
pearl pail ER EY medial
hurt heat ER IY medial
singer sink ER K final
our owl ER L final
fire fine ER N final
bird bode ER OW medial
pearl pull ER UH medial
hurt hoot ER UW medial
bait bit EY IH medial
fate feet EY IY medial
day doe EY OW final
cane coin EY OY medial
bake book EY UH medial
pail pool EY UW medial
fall hall F HH initial
fed lead F L initial
fan man F M initial
feet neat F N initial
fool pool F P initial
fed read F R initial
fat sat F S initial
fell shell F SH initial
knife night F T final
roof ruth F TH final
fan van F V initial
few view F V initial
fine wine F W initial
goal hole G HH initial
egg edge G JH final
bag back G K final
dug duck G K final
goal mole G M initial
big bin G N final
log long G NG final
gave pave G P initial
gate rate G R initial
bug bus G S final
big bit G T final
gum thumb G TH initial
gate wait G W initial
log laws G Z final
hat cat HH K initial
how cow HH K initial
head lead HH L initial
had mad HH M initial
hot not HH N initial
hit pit HH P initial
hate rate HH R initial
head said HH S initial
hit sit HH S initial
he she HH SH initial
hall tall HH T initial
hall wall HH W initial
hard yard HH Y initial
hid heed IH IY medial
kit coat IH OW medial
sit soot IH UH medial
hit hoot IH UW medial
seal soul IY OW medial
feel full IY UH medial
feel fool IY UW medial
mean moon IY UW medial
cage cake JH K final
ridge rim JH M final
badge bang JH NG final
ridge rip JH P final
jack sack JH S initial
badge bath JH TH final
cage cave JH V final
cab lab K L initial
cap lap K L initial
call mall K M initial
cot not K N initial
cow now K N initial
back bang K NG final
kin pin K P initial
cake rake K R initial
coal roll K R initial
buck bus K S final
cat sat K S initial
cook shook K SH initial
cab tab K T initial
cap tap K T initial
back bath K TH final
cake cave K V final
kin win K W initial
card yard K Y initial
buck buzz K Z final
bake beige K ZH final
lass mass L M initial
bowl bone L N final
lass pass L P initial
fly fry L R medial
lake rake L R initial
lead said L S initial
lose shoes L SH initial
lab tab L T initial
lap tap L T initial
leaf thief L TH initial
lice vice L V initial
late wait L W initial
roll rose L Z final
sum sun M N final
ham hang M NG final
come cup M P final
mad pad M P initial
mole roll M R initial
mole soul M S initial
mop shop M SH initial
ham hat M T final
mall tall M T initial
my thigh M TH initial
mat vat M V initial
mall wall M W initial
sin sing N NG final
net pet N P initial
pen pear N R final
bun bus N S final
neat seat N S initial
near sheer N SH initial
ban bat N T final
pan pat N T final
pan path N TH final
cane cave N V final
nail wail N W initial
bun buzz N Z final
king kit NG T final
long laws NG Z final
toe toy OW OY final
below built OW T final
pole pull OW UH medial
pole pool OW UW medial
pave rave P R initial
pack sack P S initial
pat sat P S initial
pear share P SH initial
cap cat P T final
pun ton P T initial
pin thin P TH initial
pan van P V initial
pet wet P W initial
pet yet P Y initial
cheap cheese P Z final
rave save R S initial
rip sip R S initial
road showed R SH initial
rock tock R T initial
row toe R T initial
ring thing R TH initial
rice vice R V initial
rate wait R W initial
sip ship S SH initial
sank tank S T initial
sin tin S T initial
sin thin S TH initial
race rave S V final
set wet S W initial
sue you S Y initial
sip zip S Z initial
sue zoo S Z initial
shy tie SH T initial
shy thigh SH TH initial
shin win SH W initial
shoe you SH Y initial
ship zip SH Z initial
mat math T TH final
tan van T V initial
tin win T W initial
tongue young T Y initial
white wise T Z final
thing wing TH W initial
think zinc TH Z initial
soot suit UH UW medial
veil wail V W initial
veal zeal V Z initial
wheel zeal W Z initial
you zoo Y Z initial
""".strip().splitlines()]

# english spanish cognate(1)/not(0); cognates share a Latin or Greek root and sound alike.
EN_ES_PAIRS = [(english, spanish, cognate == "1") for english, spanish, cognate in (line.split() for line in """
telephone teléfono 1
animal animal 1
hospital hospital 1
doctor doctor 1
hotel hotel 1
radio radio 1
piano piano 1
chocolate chocolate 1
family familia 1
music música 1
problem problema 1
idea idea 1
television televisión 1
computer computadora 1
restaurant restaurante 1
university universidad 1
important importante 1
different diferente 1
possible posible 1
natural natural 1
elephant elefante 1
tiger tigre 1
lion león 1
giraffe jirafa 1
banana banana 1
tomato tomate 1
potato patata 1
lemon limón 1
salad ensalada 1
soup sopa 1
rice arroz 0
coffee café 1
tea té 1
sugar azúcar 1
minute minuto 1
second segundo 1
moment momento 1
color color 1
number número 1
letter letra 1
train tren 1
bus autobús 1
car coche 0
plane avión 0
bicycle bicicleta 1
map mapa 1
plant planta 1
flower flor 1
rose rosa 1
fruit fruta 1
vegetable vegetal 1
office oficina 1
president presidente 1
police policía 1
class clase 1
student estudiante 1
professor profesor 1
museum museo 1
theater teatro 1
park parque 1
lamp lámpara 1
table mesa 0
chair silla 0
door puerta 0
window ventana 0
house casa 0
dog perro 0
cat gato 0
bird pájaro 0
fish pez 0
horse caballo 0
cow vaca 0
pig cerdo 0
chicken pollo 0
bread pan 0
water agua 0
milk leche 0
cheese queso 0
egg huevo 0
apple manzana 0
orange naranja 0
meat carne 0
book libro 0
pencil lápiz 0
paper papel 1
key llave 0
shoe zapato 0
shirt camisa 0
hat sombrero 0
dress vestido 0
tree árbol 0
river río 0
sea mar 0
mountain montaña 1
sky cielo 0
sun sol 0
moon luna 0
star estrella 0
rain lluvia 0
snow nieve 0
wind viento 0
fire fuego 0
day día 0
night noche 0
week semana 0
year año 0
morning mañana 0
today hoy 0
man hombre 0
woman mujer 0
child niño 0
boy chico 0
girl chica 0
father padre 0
mother madre 0
brother hermano 0
sister hermana 0
friend amigo 0
head cabeza 0
hand mano 0
foot pie 0
eye ojo 0
mouth boca 0
heart corazón 0
red rojo 0
blue azul 0
green verde 0
yellow amarillo 0
black negro 0
white blanco 0
big grande 0
small pequeño 0
good bueno 0
bad malo 0
new nuevo 0
old viejo 0
hot caliente 0
cold frío 0
happy feliz 0
sad triste 1
fast rápido 1
slow lento 0
eat comer 0
drink beber 0
sleep dormir 0
run correr 0
walk caminar 0
speak hablar 0
read leer 0
write escribir 0
city ciudad 1
country país 0
school escuela 1
church iglesia 0
market mercado 1
bank banco 1
garden jardín 1
kitchen cocina 1
money dinero 0
time tiempo 0
love amor 0
war guerra 0
peace paz 1
art arte 1
history historia 1
science ciencia 1
nature naturaleza 1
machine máquina 1
metal metal 1
gas gas 1
center centro 1
circle círculo 1
line línea 1
point punto 1
guitar guitarra 1
violin violín 1
camera cámara 1
photo foto 1
""".strip().splitlines())]
