"""Shipped Spanish, French and German sentences for the multilingual set (written for this
project; short everyday sentences, each of about two seconds when spoken)."""

SENTENCES = {
    "es": """
el perro come pan en la cocina
mi hermana lee un libro nuevo
hoy hace mucho calor en la ciudad
el tren sale a las ocho de la mañana
la niña canta una canción bonita
mañana vamos a la playa con mis amigos
el gato duerme debajo de la mesa
mi padre trabaja en un hospital grande
la casa blanca tiene una puerta roja
los niños juegan en el parque
quiero un vaso de agua fría
el cielo está azul y claro
la profesora escribe en la pizarra
compramos fruta fresca en el mercado
el río pasa cerca del pueblo
mi abuelo cuenta historias muy largas
la música suena fuerte esta noche
el coche nuevo es muy rápido
ella bebe café con leche cada día
el pájaro vuela sobre el árbol
necesito una llave para abrir la puerta
la sopa está demasiado caliente
mi amigo vive en una casa pequeña
el sol sale temprano en verano
los zapatos negros están en la caja
la luna brilla sobre el mar
el médico habla con el paciente
me gusta caminar por la montaña
la tienda cierra a las nueve
el viento mueve las hojas verdes
mi madre prepara la cena
el perro corre detrás de la pelota
la biblioteca tiene muchos libros
hace frío y llueve mucho
el chico pinta un cuadro grande
vamos a comer pollo con arroz
la ventana está abierta
el reloj marca las tres
la flor amarilla huele muy bien
escucho la radio por la tarde
""",
    "fr": """
le chat dort sur le canapé
ma sœur lit un livre rouge
il fait très beau aujourd'hui
le train part à huit heures
la petite fille chante une chanson
nous allons à la plage demain
le chien mange dans la cuisine
mon père travaille à l'hôpital
la maison a une porte bleue
les enfants jouent dans le jardin
je voudrais un verre d'eau froide
le ciel est clair ce matin
le professeur écrit au tableau
nous achetons des fruits au marché
la rivière passe près du village
mon grand-père raconte des histoires
la musique est forte ce soir
la voiture neuve est très rapide
elle boit du café chaque matin
l'oiseau vole au-dessus de l'arbre
j'ai besoin d'une clé pour la porte
la soupe est trop chaude
mon ami habite une petite maison
le soleil se lève tôt en été
les chaussures noires sont dans la boîte
la lune brille sur la mer
le médecin parle avec le malade
j'aime marcher dans la montagne
le magasin ferme à neuf heures
le vent fait bouger les feuilles
ma mère prépare le dîner
le chien court après la balle
la bibliothèque a beaucoup de livres
il fait froid et il pleut
le garçon peint un grand tableau
nous mangeons du poulet avec du riz
la fenêtre est ouverte
l'horloge sonne trois heures
la fleur jaune sent très bon
j'écoute la radio l'après-midi
""",
    "de": """
die katze schläft auf dem sofa
meine schwester liest ein neues buch
heute ist es sehr warm in der stadt
der zug fährt um acht uhr ab
das kleine mädchen singt ein lied
morgen fahren wir an den strand
der hund frisst in der küche
mein vater arbeitet im krankenhaus
das haus hat eine rote tür
die kinder spielen im garten
ich möchte ein glas kaltes wasser
der himmel ist heute klar
der lehrer schreibt an die tafel
wir kaufen obst auf dem markt
der fluss fließt am dorf vorbei
mein großvater erzählt lange geschichten
die musik ist heute abend laut
das neue auto ist sehr schnell
sie trinkt jeden morgen kaffee
der vogel fliegt über den baum
ich brauche einen schlüssel für die tür
die suppe ist zu heiß
mein freund wohnt in einem kleinen haus
die sonne geht im sommer früh auf
die schwarzen schuhe sind im karton
der mond scheint über dem meer
der arzt spricht mit dem patienten
ich wandere gern in den bergen
der laden schließt um neun uhr
der wind bewegt die grünen blätter
meine mutter kocht das abendessen
der hund läuft hinter dem ball her
die bibliothek hat viele bücher
es ist kalt und es regnet
der junge malt ein großes bild
wir essen huhn mit reis
das fenster ist offen
die uhr schlägt drei
die gelbe blume riecht gut
ich höre am nachmittag radio
""",
}

SENTENCES = {language: text.strip().splitlines() for language, text in SENTENCES.items()}
