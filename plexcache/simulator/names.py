"Vocabulary for the synthetic library: deliberately full of unicode and XML-special characters"

from __future__ import annotations

ADJ = (
    "Midnight Silver Broken Golden Neon Velvet Paper Electric Crystal Hollow Wild Quiet Burning "
    "Distant Northern Summer Winter Lonely Secret Falling Crimson Violet Iron Glass Static Hidden "
    "Bitter Sweet Endless Faded Frozen Gentle Lost Modern Naked Open Pale Restless Sacred Savage "
    "Shallow Slow Strange Sudden Tender Twisted Wicked Young Analog Cosmic Digital Lunar Solar"
).split()

NOUN = (
    "Hearts Lights Dreams Kings Wolves Roads Machines Tides Birds Stars Shadows Rivers Fires Horses "
    "Mirrors Engines Gardens Cities Waves Bells Echoes Ghosts Oceans Deserts Satellites Lovers "
    "Strangers Saints Sinners Mountains Islands Windows Doors Bridges Flowers Storms Clouds Voices "
    "Daughters Sons Brothers Sisters Thieves Pilots Sailors Dancers Painters Poets Foxes Owls"
).split()

WORDS = (
    "love night day light heart time world life dream fire rain sun moon home road heaven soul "
    "dance river song blue city ghost gold wind rose angel summer lies truth silence forever "
    "tonight tomorrow yesterday stay run fall rise wait remember forget hold believe shine burn"
).split()

FIRST = (
    "Anna José Zoë Björn Chloé Håkon Łucja Ólafur François Renée Jürgen Søren Inès Mikaël Ana "
    "Luis Maria John Paul Nina Oskar Emma Lars Sofía Dmitri Aleksandra Noah Amélie Youssef "
    "Kofi Aiyana Priya Mateo Élodie Thandiwe Joaquín Agnieszka Tomáš Željko"
).split()

LAST = (
    "Müller Dvořák García Nørgaard Smith O'Brien Ødegaard Kowalski Novák Petrović Silva Dubois "
    "Lefèvre Jansen Svensson Rossi Fernández Nakamura Kim Okafor Haddad Johansson Şahin Ivanova "
    "MacLeod Brontë Gonçalves Weiß Nuñez Åberg"
).split()

CJK_NAMES = (
    "木小雅 坂本龍一 宇多田ヒカル 東京事変 周杰倫 久石譲 椎名林檎 星野源 방탄소년단 아이유 "
    "陈奕迅 王菲 中島みゆき 山下達郎 竹内まりや 细野晴臣 李荣浩 邓紫棋 혁오 검정치마"
).split()

CJK_WORDS = "夜 空 海 夢 光 風 花 雨 星 心 愛 月 雪 道 声 春 秋 青 白 時間".split()

EMOJI = ("🔥", "🌙", "✨", "🎸", "🌊", "💔")

VENUES = (
    "the Royal Albert Hall",
    "Budokan",
    "Wembley",
    "the Fillmore",
    "Montreux",
    "Red Rocks",
    "the Olympia",
    "KEXP",
    "Abbey Road",
    "Roskilde",
    "the Paradiso",
    "Glastonbury",
    "Café Oto",
    "the Village Vanguard",
)

STUDIOS = (
    "Polydor",
    "Virgin",
    "Sub Pop",
    "Warp",
    "4AD",
    "Rough Trade",
    "Columbia",
    "Deutsche Grammophon",
    "ECM",
    "Blue Note",
    "Domino",
    "XL Recordings",
    "Matador",
    "Ninja Tune",
    "A&M",
    "Island",
    "Nonesuch",
    "avex trax",
    "Sony Music Japan",
    "Because Music",
)

GENRES = (
    "Rock",
    "Pop",
    "Electronic",
    "Jazz",
    "Hip-Hop",
    "Folk",
    "Metal",
    "Indie Rock",
    "Alternative",
    "R&B",
    "Soul",
    "Blues",
    "Country",
    "Reggae",
    "Punk",
    "Ambient",
    "Dance",
    "House",
    "Techno",
    "Soundtrack",
    "World",
    "Latin",
    "K-Pop",
    "J-Pop",
    "Chanson",
    "Singer/Songwriter",
    "Funk",
    "Disco",
    "Experimental",
    "Lo-Fi",
    "Drum & Bass",
    "Trip-Hop",
    "Shoegaze",
    "Post-Rock",
    "New Wave",
    "Synth-Pop",
    "Música Popular Brasileira",
    "Psychedelic <Rock>",
    "Classical",
    "Baroque",
    "Romantic",
    "Opera",
    "Chamber Music",
    "Contemporary Classical",
    "Minimalism",
)
CLASSICAL_GENRES = (
    "Classical",
    "Baroque",
    "Romantic",
    "Opera",
    "Chamber Music",
    "Contemporary Classical",
    "Minimalism",
)
POP_GENRES = tuple(g for g in GENRES if g not in CLASSICAL_GENRES)

COMPOSERS = (
    "Johann Sebastian Bach",
    "Ludwig van Beethoven",
    "Antonín Dvořák",
    "Pyotr Ilyich Tchaikovsky",
    "Frédéric Chopin",
    "Erik Satie",
    "Wolfgang Amadeus Mozart",
    "Claude Debussy",
    "Béla Bartók",
    "Arvo Pärt",
    "Dmitri Shostakovich",
    "Edvard Grieg",
    "Gustav Mahler",
    "Sergei Rachmaninoff",
    "Jean Sibelius",
    "Toru Takemitsu (武満徹)",
    "Hildegard von Bingen",
    "Steve Reich",
)
FORMS = (
    "Symphony No. {n}",
    "Piano Concerto No. {n} in {k}",
    "String Quartet No. {n}, Op. {op}",
    "Sonata in {k}, Op. {op}",
    "Études, Op. {op}",
    'Suite No. {n} "{w}"',
    "Requiem in {k}",
    "Variations on a Theme <{w}>",
)
KEYS = ("C major", "D minor", "E♭ major", "F♯ minor", "A major", "B♭ minor", "G major")
MOVEMENTS = (
    "I. Allegro",
    "II. Adagio",
    "III. Scherzo & Trio",
    "IV. Finale: Presto",
    "Andante",
    "Largo",
)
COMPILATIONS = (
    "Best of {g} {y}",
    "Now That's What I Call {g}",
    "{g} Classics",
    "The Sound of {y}",
    "Ultimate {g} Collection",
    "Ministry of {g}",
)
