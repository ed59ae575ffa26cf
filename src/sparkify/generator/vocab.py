"""Fixed word lists the generator draws from.

All lists are written for this project (inspired by the shape of the public Sparkify
sample, not copied from it). Order matters for determinism: never build these from sets.
Accented words use characters whose double-encoded (mojibake) form repairs cleanly with
``s.encode("latin-1").decode("utf-8")``; avoid adding "ß", dotless/dotted Turkish i or
ligatures, whose case mappings change length.
"""

from __future__ import annotations

FEMALE_FIRST_NAMES: tuple[str, ...] = (
    "Abigail", "Alice", "Amara", "Ava", "Brooke", "Camila", "Chloe", "Claire", "Dana",
    "Elena", "Ella", "Emily", "Erin", "Faith", "Grace", "Hailey", "Hannah", "Harper",
    "Isabel", "Jade", "Jasmine", "Julia", "Kayla", "Leah", "Lena", "Lily", "Lucy", "Maya",
    "Megan", "Mia", "Naomi", "Nora", "Olivia", "Paige", "Quinn", "Rachel", "Riley", "Rosa",
    "Sadie", "Sara", "Sienna", "Sophie", "Stella", "Tessa", "Vera", "Violet", "Willa",
    "Zoe",
)  # fmt: skip

MALE_FIRST_NAMES: tuple[str, ...] = (
    "Aaron", "Adrian", "Aiden", "Andre", "Austin", "Ben", "Brandon", "Caleb", "Carter",
    "Cole", "Colin", "Connor", "Damian", "Dylan", "Eli", "Ethan", "Felix", "Gabriel",
    "Gavin", "Henry", "Hugo", "Isaac", "Jack", "Jalen", "Jonah", "Jordan", "Julian",
    "Kevin", "Leon", "Liam", "Logan", "Lucas", "Marcus", "Mason", "Micah", "Miles",
    "Nathan", "Noah", "Oscar", "Owen", "Parker", "Reed", "Ryan", "Samuel", "Theo",
    "Tyler", "Victor", "Wyatt",
)  # fmt: skip

LAST_NAMES: tuple[str, ...] = (
    "Abbott", "Alvarez", "Barker", "Bennett", "Boyd", "Brennan", "Caldwell", "Castro",
    "Chandler", "Cruz", "Dalton", "Delgado", "Dixon", "Donovan", "Ellis", "Farrell",
    "Fischer", "Fleming", "Foster", "Gallagher", "Garner", "Gibbs", "Hale", "Hartman",
    "Hayes", "Hendrix", "Holloway", "Ingram", "Jacobs", "Keller", "Kim", "Lambert",
    "Lawson", "Lowe", "Maddox", "Marsh", "Mendez", "Monroe", "Nash", "Nguyen", "Novak",
    "Ortega", "Osborne", "Patel", "Pierce", "Quintero", "Ramsey", "Reyes", "Rhodes",
    "Salazar", "Shepherd", "Sloan", "Tanaka", "Thornton", "Vance", "Wade", "Walsh",
    "Whitaker", "Yates", "Zimmerman",
)  # fmt: skip

# US metro areas in the feed's shape: "City-City, ST" and "City, ST-ST".
# Weights are relative and only shape how often each appears.
LOCATIONS: tuple[tuple[str, int], ...] = (
    ("New York-Newark-Jersey City, NY-NJ-PA", 9),
    ("Los Angeles-Long Beach-Anaheim, CA", 8),
    ("Chicago-Naperville-Elgin, IL-IN-WI", 7),
    ("Dallas-Fort Worth-Arlington, TX", 6),
    ("Houston-The Woodlands-Sugar Land, TX", 5),
    ("Atlanta-Sandy Springs-Roswell, GA", 5),
    ("Boston-Cambridge-Newton, MA-NH", 5),
    ("Seattle-Tacoma-Bellevue, WA", 4),
    ("Denver-Aurora-Lakewood, CO", 4),
    ("Minneapolis-St. Paul-Bloomington, MN-WI", 4),
    ("Baltimore-Columbia-Towson, MD", 3),
    ("Austin-Round Rock, TX", 3),
    ("Charlotte-Concord-Gastonia, NC-SC", 3),
    ("Portland-Vancouver-Hillsboro, OR-WA", 3),
    ("Kansas City, MO-KS", 3),
    ("Louisville/Jefferson County, KY-IN", 2),
    ("Cincinnati, OH-KY-IN", 2),
    ("Columbus, OH", 2),
    ("Las Vegas-Henderson-Paradise, NV", 2),
    ("Orlando-Kissimmee-Sanford, FL", 2),
    ("Raleigh, NC", 2),
    ("Pittsburgh, PA", 2),
    ("Omaha-Council Bluffs, NE-IA", 1),
    ("Des Moines-West Des Moines, IA", 1),
    ("Albuquerque, NM", 1),
    ("Tucson, AZ", 1),
    ("Boise City, ID", 1),
    ("Fargo, ND-MN", 1),
    ("Spokane-Spokane Valley, WA", 1),
    ("Knoxville, TN", 1),
    ("Madison, WI", 1),
    ("Burlington-South Burlington, VT", 1),
    ("Urban Honolulu, HI", 1),
    ("Anchorage, AK", 1),
)

# Browser user agents of the period. Like the feed, most carry literal double quotes.
USER_AGENTS: tuple[tuple[str, int], ...] = (
    (
        '"Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) '
        'Chrome/36.0.1985.143 Safari/537.36"',
        9,
    ),
    (
        '"Mozilla/5.0 (Windows NT 6.3; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) '
        'Chrome/37.0.2062.120 Safari/537.36"',
        7,
    ),
    (
        '"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_5) AppleWebKit/537.36 (KHTML, like Gecko) '
        'Chrome/37.0.2062.120 Safari/537.36"',
        7,
    ),
    (
        '"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_5) AppleWebKit/537.78.2 (KHTML, like Gecko) '
        'Version/7.0.6 Safari/537.78.2"',
        6,
    ),
    (
        '"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_10_1) AppleWebKit/600.2.5 (KHTML, like Gecko) '
        'Version/8.0.2 Safari/600.2.5"',
        3,
    ),
    (
        '"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) '
        'Chrome/37.0.2062.120 Safari/537.36"',
        4,
    ),
    (
        '"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) '
        'Ubuntu Chromium/37.0.2062.94 Chrome/37.0.2062.94 Safari/537.36"',
        3,
    ),
    (
        '"Mozilla/5.0 (iPhone; CPU iPhone OS 8_1 like Mac OS X) AppleWebKit/600.1.4 '
        '(KHTML, like Gecko) Version/8.0 Mobile/12B411 Safari/600.1.4"',
        4,
    ),
    (
        '"Mozilla/5.0 (iPad; CPU OS 7_1_2 like Mac OS X) AppleWebKit/537.51.2 '
        '(KHTML, like Gecko) Version/7.0 Mobile/11D257 Safari/9537.53"',
        2,
    ),
    (
        '"Mozilla/5.0 (Linux; Android 4.4.2; Nexus 5 Build/KOT49H) AppleWebKit/537.36 '
        '(KHTML, like Gecko) Chrome/37.0.2062.117 Mobile Safari/537.36"',
        2,
    ),
    (
        '"Mozilla/5.0 (Windows NT 6.1) AppleWebKit/537.36 (KHTML, like Gecko) '
        'Chrome/37.0.2062.124 Safari/537.36"',
        2,
    ),
    (
        '"Mozilla/5.0 (Windows NT 6.2; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) '
        'Chrome/36.0.1985.125 Safari/537.36"',
        1,
    ),
    ("Mozilla/5.0 (Windows NT 6.1; WOW64; rv:32.0) Gecko/20100101 Firefox/32.0", 5),
    ("Mozilla/5.0 (Windows NT 6.3; WOW64; rv:33.0) Gecko/20100101 Firefox/33.0", 3),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10.9; rv:32.0) Gecko/20100101 Firefox/32.0", 3),
    ("Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:32.0) Gecko/20100101 Firefox/32.0", 1),
    ("Mozilla/5.0 (Windows NT 5.1; rv:31.0) Gecko/20100101 Firefox/31.0", 2),
    ("Mozilla/5.0 (Windows NT 6.1; WOW64; Trident/7.0; rv:11.0) like Gecko", 2),
    ("Mozilla/5.0 (compatible; MSIE 10.0; Windows NT 6.1; WOW64; Trident/6.0)", 1),
    ("Mozilla/5.0 (compatible; MSIE 9.0; Windows NT 6.1; Trident/5.0)", 1),
)

# --- catalogue vocabulary -------------------------------------------------------------

EN_ADJECTIVES: tuple[str, ...] = (
    "Silver", "Broken", "Golden", "Electric", "Quiet", "Wild", "Lonely", "Crimson",
    "Hollow", "Midnight", "Burning", "Velvet", "Distant", "Paper", "Neon", "Frozen",
    "Sweet", "Restless", "Northern", "Holy", "Blue", "Secret", "Last", "Little",
    "Heavy", "Bright", "Lost", "Cold", "Open", "Endless", "Strange", "Careless",
)  # fmt: skip

EN_NOUNS: tuple[str, ...] = (
    "Heart", "River", "Highway", "Mirror", "Garden", "Engine", "Ocean", "Shadow",
    "Summer", "Harbor", "Stranger", "Window", "Morning", "Thunder", "Island", "Lantern",
    "Signal", "Machine", "Canyon", "Letter", "Feather", "Kingdom", "Radio", "Station",
    "Wolf", "Satellite", "Daydream", "Parade", "Circus", "Echo", "Horizon", "Fever",
)  # fmt: skip

EN_VERBS: tuple[str, ...] = (
    "Dancing", "Running", "Waiting", "Falling", "Calling", "Driving", "Dreaming",
    "Walking", "Hiding", "Singing", "Fading", "Burning", "Holding", "Chasing",
)  # fmt: skip

EN_PLACES: tuple[str, ...] = (
    "the Rain", "the Dark", "the Sun", "the Sea", "the City", "the Moon", "the Wire",
    "the Night", "the Line", "the Storm", "the Edge", "the Stars",
)  # fmt: skip

TITLE_SUFFIXES: tuple[str, ...] = (
    " (Live)", " (Remix)", " (Album Version)", " (Acoustic)", " - Radio Edit",
    " (Demo)", " Part II", " (Remastered)", " (Instrumental)", " (Extended Mix)",
)  # fmt: skip

# Syllables for invented band names ("Korvalix", "Mondrea").
SYLLABLES: tuple[str, ...] = (
    "kor", "va", "lix", "mon", "dre", "a", "zel", "to", "bri", "nu", "sol", "qua",
    "ri", "mo", "ta", "fen", "lo", "xi", "ba", "rum", "pel", "ca", "dor", "in",
)  # fmt: skip

# Per language: first names, last names, title words and set phrases. The non-English
# entries carry most of the accents (é, ü, ñ, ø, å, ã, ç ...).
FOREIGN: dict[str, dict[str, tuple[str, ...]]] = {
    "es": {
        "first": ("José", "María", "Andrés", "Inés", "Jesús", "Lucía", "Ramón", "Sofía",
                  "Héctor", "Raúl", "Belén", "Joaquín", "Carmen", "Diego"),
        "last": ("Peña", "Núñez", "Muñoz", "Ibáñez", "Sánchez", "Gómez", "Martín",
                 "Ordóñez", "Castaño", "Vega", "Rojas", "Echeverría"),
        "band": ("Los Corazones", "Los Niños del Sur", "La Canción", "Los Tiburones",
                 "La Sonora Azúl", "Los Pájaros"),
        "title": ("Corazón Partido", "Mañana Será", "Canción del Mar", "Niño del Alba",
                  "Qué Será", "La Última Noche", "Bésame Despacio", "Sueño de Verano",
                  "Años Perdidos", "Camino a León", "Dónde Estás", "El Pequeño Baile",
                  "Mi Razón", "Aquí Estoy", "Lágrimas"),
    },
    "fr": {
        "first": ("Hélène", "Gaëlle", "Léa", "Jérôme", "François", "Amélie", "Zoé",
                  "Noël", "Cécile", "Théo", "Aurélien", "Maëlle"),
        "last": ("Dubois", "Lefèvre", "Mercier", "Bézier", "Garçon", "Moreau",
                 "Thévenin", "Bérard", "Rivière", "Fontaine"),
        "band": ("Les Étoiles", "Les Frères Lumière", "Les Désirables",
                 "Les Rêveurs", "Café Bleu"),
        "title": ("Déjà Vu", "Été Indien", "Ça Ira", "La Fête", "Désir", "Mélodie d'Été",
                  "Rêve Éveillé", "Sérénité", "Ma Vie en Rose", "Où Es-Tu",
                  "Les Années Folles", "Près de Toi", "Lumière Noire", "À Demain"),
    },
    "de": {
        "first": ("Jürgen", "Jörg", "Käthe", "Günther", "Lena", "Björn", "Ute", "Matthias"),
        "last": ("Müller", "Schäfer", "Krüger", "Böhm", "Förster", "Schröder", "Lübke",
                 "Hoffmann", "Köhler"),
        "band": ("Die Ärzte von Morgen", "Kraftwerk Süd", "Die Fröhlichen", "Blaue Stühle"),
        "title": ("Über den Wolken", "Für Immer", "Schön Ist die Nacht", "Grüne Wiese",
                  "Mädchen", "Nächte in Köln", "Fühl Dich Frei", "Träumerei", "Zurück"),
    },
    "nordic": {
        "first": ("Søren", "Åsa", "Björk", "Jónsi", "Øystein", "Märta", "Ólafur", "Kåre"),
        "last": ("Ångström", "Sørensen", "Kjærgård", "Lindqvist", "Jóhannsson",
                 "Nyström", "Ødegaard", "Håkansson"),
        "band": ("Hljómsveit Rós", "Rökkur", "Mø Collective", "Kvartett Ærø"),
        "title": ("Tähtien Yö", "Hafið Bláa", "Vår Sång", "Älska Mig",
                  "Sommarnätter", "Hjärta", "Lørdag", "Tårer", "Kärlek"),
    },
    "pt": {
        "first": ("João", "Conceição", "Tomás", "Inês", "Gonçalo", "Sebastião"),
        "last": ("Simões", "Gonçalves", "Magalhães", "Assunção", "Brandão", "Lima"),
        "band": ("Trio Solimões", "Os Mutantes Novos", "Bossa Ipanema"),
        "title": ("Saudação", "Coração Vagabundo", "Rua da Saudade", "Manhã de Carnaval",
                  "Canção do Mar", "Não Chore Mais", "Três Palavras"),
    },
}  # fmt: skip

# Share of artists per language; English names are plain ASCII.
LANGUAGE_WEIGHTS: tuple[tuple[str, int], ...] = (
    ("en", 62),
    ("es", 11),
    ("fr", 10),
    ("de", 6),
    ("nordic", 7),
    ("pt", 4),
)

# Where artists come from, as song files spell it (free text, often empty).
ARTIST_LOCATIONS: tuple[tuple[str, float | None, float | None], ...] = (
    ("Memphis, TN", 35.14968, -90.04892),
    ("London, England", 51.50632, -0.12714),
    ("New York, NY", 40.71455, -74.00712),
    ("Los Angeles, CA", 34.05349, -118.24532),
    ("Chicago, IL", 41.88415, -87.63241),
    ("Toronto, Ontario, Canada", 43.64856, -79.38533),
    ("Paris, France", 48.85717, 2.34140),
    ("Madrid, Spain", 40.41956, -3.69196),
    ("Mexico City, Mexico", 19.43268, -99.13421),
    ("Stockholm, Sweden", 59.33217, 18.06243),
    ("Reykjavik, Iceland", 64.13548, -21.89541),
    ("Berlin, Germany", 52.51607, 13.37698),
    ("Rio de Janeiro, Brazil", -22.97673, -43.19508),
    ("Seattle, WA", 47.60356, -122.32944),
    ("Nashville, TN.", 36.16778, -86.77836),
    ("California - LA", None, None),
    ("Texas", None, None),
    ("United States", None, None),
    ("Ohio", None, None),
    ("Brooklyn, NY", None, None),
    ("Montréal, Québec, Canada", None, None),
    ("Bergen, Norway", None, None),
    ("Lisboa, Portugal", None, None),
)
