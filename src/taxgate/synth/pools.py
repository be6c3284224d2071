"""Pools the synthetic world draws from. Common given names and surnames by origin, street names,
and places; drawn independently and combined at random, so no record describes a real person.

Pools are ordered most common first: draws follow a Zipf law, so a few names recur many times,
which is what breaks matchers in real data.
"""

from __future__ import annotations

# origin -> (weight in the population, given names, surnames)
ORIGINS: dict[str, tuple[float, list[str], list[str]]] = {
    "anglo": (0.38, [
        "JAMES", "MARY", "JOHN", "PATRICIA", "ROBERT", "JENNIFER", "MICHAEL", "LINDA", "WILLIAM", "ELIZABETH",
        "DAVID", "BARBARA", "RICHARD", "SUSAN", "JOSEPH", "JESSICA", "THOMAS", "SARAH", "CHARLES", "KAREN",
        "CHRISTOPHER", "NANCY", "DANIEL", "LISA", "MATTHEW", "BETTY", "ANTHONY", "MARGARET", "MARK", "SANDRA",
        "MARY ELLEN", "BILLY JOE", "ANNA MARIE", "JOHN PAUL",
    ], [
        "SMITH", "JOHNSON", "WILLIAMS", "BROWN", "JONES", "MILLER", "DAVIS", "WILSON", "ANDERSON", "TAYLOR",
        "THOMAS", "MOORE", "MARTIN", "JACKSON", "THOMPSON", "WHITE", "HARRIS", "CLARK", "LEWIS", "ROBINSON",
        "WALKER", "YOUNG", "ALLEN", "KING", "WRIGHT", "SCOTT", "HILL", "GREEN", "ADAMS", "BAKER", "O'BRIEN",
        "SMITH-JONES", "MCDONALD", "VAN DYKE",
    ]),
    "hispanic": (0.30, [
        "JOSÉ", "MARÍA", "JUAN", "GUADALUPE", "LUIS", "ANA", "CARLOS", "ROSA", "JESÚS", "FRANCISCA", "MIGUEL",
        "MARTHA", "ANTONIO", "JUANA", "FRANCISCO", "ELENA", "PEDRO", "LETICIA", "ALEJANDRO", "VERÓNICA",
        "MARÍA GUADALUPE", "JOSÉ LUIS", "JUAN CARLOS", "MARÍA DE LOS ÁNGELES", "ANA SOFÍA", "JUAN PABLO",
        "MARÍA JOSÉ", "JOSÉ ÁNGEL", "LUZ MARÍA",
    ], [
        "GARCÍA", "HERNÁNDEZ", "MARTÍNEZ", "LÓPEZ", "GONZÁLEZ", "RODRÍGUEZ", "PÉREZ", "SÁNCHEZ", "RAMÍREZ",
        "FLORES", "GÓMEZ", "DÍAZ", "REYES", "MORALES", "CRUZ", "ORTIZ", "GUTIÉRREZ", "CHÁVEZ", "RAMOS",
        "RUIZ", "MUÑOZ", "JIMÉNEZ", "VÁZQUEZ", "CASTILLO", "MENDOZA", "DE LA CRUZ", "DEL RÍO", "DE LEÓN",
        "DE LOS SANTOS", "NÚÑEZ", "IBÁÑEZ", "PEÑA",
    ]),
    "vietnamese": (0.06, [
        "VAN MINH", "THI LAN", "MINH", "THANH", "HOA", "TUAN", "THI MAI", "DUC ANH", "VAN HUNG", "THI HUONG",
        "LINH", "QUANG", "NGOC ANH",
    ], ["NGUYEN", "TRAN", "LE", "PHAM", "HOANG", "PHAN", "VU", "DANG", "BUI", "DO", "HO", "NGO", "DUONG", "LY"]),
    "chinese": (0.07, [
        "WEI", "JING", "XIAOMING", "LI NA", "HAO", "YAN", "JUN", "MEI", "XIU YING", "JIAN", "LEI", "YING", "ZHI WEI",
    ], ["WANG", "LI", "ZHANG", "LIU", "CHEN", "YANG", "HUANG", "ZHAO", "WU", "ZHOU", "XU", "SUN", "MA", "ZHU"]),
    "korean": (0.03, ["MIN-JUN", "SEO-YEON", "JI-HO", "HA-EUN", "DO-YUN", "JI-WOO", "SEO-JUN", "SU-BIN"],
               ["KIM", "LEE", "PARK", "CHOI", "JUNG", "KANG", "CHO", "YOON"]),
    "south_asian": (0.06, ["PRIYA", "RAHUL", "AMIT", "ANJALI", "SANJAY", "DEEPA", "VIKRAM", "SUNITA", "ARJUN", "KAVYA"],
                    ["PATEL", "SHAH", "SINGH", "KUMAR", "SHARMA", "GUPTA", "REDDY", "DESAI", "MEHTA", "RAO"]),
    "arabic": (0.03, ["MOHAMMED", "FATIMA", "OMAR", "AISHA", "YUSUF", "MARYAM", "KHALID", "LAYLA", "ABDUL RAHMAN"],
               ["AHMED", "HASSAN", "ALI", "MOHAMED", "IBRAHIM", "ABDULLAH", "SALEH", "AL-SAYED", "EL-AMIN"]),
    "west_african": (0.03, ["CHINEDU", "AMA", "KWAME", "FATOU", "TESFAYE", "ADAEZE", "KOFI", "AMINATA", "OLUWASEUN"],
                     ["OKAFOR", "MENSAH", "DIALLO", "KAMARA", "ABEBE", "OKONKWO", "TRAORE", "BANGURA", "ADEYEMI"]),
    "filipino": (0.04, ["MARIA CRISTINA", "JOSE", "MARK ANTHONY", "ROWENA", "JOHN REY", "MA. TERESA", "RONALDO", "JOCELYN"],
                 ["SANTOS", "REYES", "CRUZ", "BAUTISTA", "DELA CRUZ", "GARCIA", "MENDOZA", "DE GUZMAN", "VILLANUEVA"]),
}

# Origins whose people carry a paternal and a maternal surname.
TWO_SURNAMES = {"hispanic"}
# Origins whose names are often written surname first by the requester.
SURNAME_FIRST = {"vietnamese", "chinese", "korean"}

STREET_NAMES = [
    "MAIN", "OAK", "MAPLE", "CEDAR", "PINE", "ELM", "WASHINGTON", "LAKE", "HILL", "PARK", "SUNSET", "LINCOLN",
    "JACKSON", "HIGHLAND", "CHURCH", "CENTER", "RIVER", "SPRING", "VALLEY", "RIDGE", "MEADOW", "FOREST",
    "WALNUT", "CHESTNUT", "WILLOW", "1ST", "2ND", "3RD", "4TH", "5TH", "12TH", "23RD", "CESAR CHAVEZ",
    "MARTIN LUTHER KING JR", "CALLE DEL SOL", "CAMINO REAL", "LAS PALMAS", "EL CAMINO", "MISSION", "BROADWAY",
]
# USPS Publication 28 suffix abbreviations with their long forms (requesters write either).
STREET_TYPES = {"ST": "STREET", "AVE": "AVENUE", "RD": "ROAD", "DR": "DRIVE", "LN": "LANE", "BLVD": "BOULEVARD",
                "CT": "COURT", "WAY": "WAY", "PL": "PLACE", "CIR": "CIRCLE"}
DIRECTIONALS = {"N": "NORTH", "S": "SOUTH", "E": "EAST", "W": "WEST"}
UNIT_TYPES = {"APT": "APARTMENT", "UNIT": "UNIT", "STE": "SUITE"}

# City, state, the first three digits of its ZIP codes.
PLACES = [
    ("HOUSTON", "TX", "770"), ("LOS ANGELES", "CA", "900"), ("CHICAGO", "IL", "606"), ("PHOENIX", "AZ", "850"),
    ("SAN ANTONIO", "TX", "782"), ("EL PASO", "TX", "799"), ("MIAMI", "FL", "331"), ("ATLANTA", "GA", "303"),
    ("CHARLOTTE", "NC", "282"), ("DENVER", "CO", "802"), ("SEATTLE", "WA", "981"), ("NEWARK", "NJ", "071"),
    ("ORLANDO", "FL", "328"), ("DALLAS", "TX", "752"), ("LAS VEGAS", "NV", "891"), ("FRESNO", "CA", "937"),
    ("OMAHA", "NE", "681"), ("RALEIGH", "NC", "276"), ("NASHVILLE", "TN", "372"), ("SALT LAKE CITY", "UT", "841"),
    ("BOISE", "ID", "837"), ("ALBUQUERQUE", "NM", "871"), ("TUCSON", "AZ", "857"), ("SACRAMENTO", "CA", "958"),
    ("PORTLAND", "OR", "972"), ("MINNEAPOLIS", "MN", "554"), ("COLUMBUS", "OH", "432"), ("INDIANAPOLIS", "IN", "462"),
    ("SPRINGFIELD", "IL", "627"), ("SPRINGFIELD", "MO", "658"), ("BROWNSVILLE", "TX", "785"), ("YAKIMA", "WA", "989"),
    ("SALINAS", "CA", "939"), ("HIALEAH", "FL", "330"), ("PATERSON", "NJ", "075"), ("DALTON", "GA", "307"),
]
