"""The 24 EntityQuestions relations: question phrasings (for mastery and tests) and statement
phrasings (for the sandbox pretraining corpus, deliberately different from the questions).

Each relation has 7 question stems; each stem is asked in 3 framings, giving the 21 phrasings
(N_map) of Study K. `{s}` is the subject, `{o}` the answer.
"""

from dataclasses import dataclass

# Location-type relations: the in-domain (ID) set of Study K. The rest are out-of-domain (OOD).
ID_RELATIONS = ("P17", "P19", "P20", "P36", "P69", "P131", "P159", "P276", "P495", "P740")

FRAMINGS = ("{q}", "Quick question: {q}", "Answer briefly: {q}")


@dataclass(frozen=True)
class Relation:
    pid: str
    name: str
    subject_type: str
    answer_type: str
    stems: tuple[str, ...]  # 7 question stems with {s}
    statements: tuple[str, ...]  # statement phrasings with {s} and {o}

    @property
    def questions(self) -> tuple[str, ...]:
        """The 21 question phrasings: every stem under every framing."""
        return tuple(f.format(q=stem) for stem in self.stems for f in FRAMINGS)

    @property
    def in_domain(self) -> bool:
        return self.pid in ID_RELATIONS


def _r(pid, name, subject_type, answer_type, stems, statements):
    assert len(stems) == 7, pid
    return Relation(pid, name, subject_type, answer_type, tuple(stems), tuple(statements))


RELATIONS: dict[str, Relation] = {r.pid: r for r in [
    _r("P17", "country", "landmark", "country", [
        "Which country is {s} located in?", "In which country is {s}?", "What country is {s} in?",
        "{s} is in which country?", "Which country contains {s}?", "Name the country where {s} is.",
        "Where, by country, is {s}?"],
       ["{s} lies in the land of {o}.", "travelers find {s} inside {o}.", "{s} stands on the soil of {o}.", "{s} belongs to the nation of {o}."]),
    _r("P19", "place of birth", "person", "city", [
        "Where was {s} born?", "What is the birthplace of {s}?", "In which city was {s} born?",
        "Which city is the hometown of {s}?", "{s} was born in which city?", "Where is {s} from originally?",
        "Name the city where {s} was born."],
       ["{s} came into the world in {o}.", "{s} entered life at {o}.", "records show {s} began life in {o}.", "as a baby, {s} lived in {o}."]),
    _r("P20", "place of death", "person", "city", [
        "Where did {s} die?", "What is the place of death of {s}?", "In which city did {s} die?",
        "{s} died in which city?", "Where did {s} pass away?", "Which city did {s} die in?",
        "Name the city where {s} died."],
       ["{s} drew a final breath in {o}.", "the life of {s} ended in {o}.", "{s} perished at {o}.", "records show {s} was buried after dying in {o}."]),
    _r("P26", "spouse", "person", "person", [
        "Who is {s} married to?", "Who is the spouse of {s}?", "Who is the wife or husband of {s}?",
        "{s} is married to whom?", "Whom did {s} marry?", "Who is the partner in marriage of {s}?",
        "Name the spouse of {s}."],
       ["{s} wed {o}.", "{s} shares a marriage with {o}.", "{s} took {o} as a partner for life.", "the wedding of {s} joined {s} with {o}."]),
    _r("P36", "capital", "country", "city", [
        "What is the capital of {s}?", "Which city is the capital of {s}?", "What is the capital city of {s}?",
        "The capital of {s} is which city?", "Where is the seat of government of {s}?",
        "Which city serves as the capital of {s}?", "Name the capital of {s}."],
       ["the government of {s} sits in {o}.", "{s} is ruled from {o}.", "the rulers of {s} meet in {o}.", "the seat of power of {s} lies in {o}."]),
    _r("P40", "child", "person", "person", [
        "Who is the child of {s}?", "Who is {s}'s child?", "Name a child of {s}.",
        "Who is the son or daughter of {s}?", "{s} is the parent of whom?", "Whose parent is {s}?",
        "Which person is a child of {s}?"],
       ["{s} raised {o}.", "{s} gave life to {o}.", "the heir of {s} is {o}.", "the offspring of {s} include {o}."]),
    _r("P50", "author", "book", "person", [
        "Who is the author of {s}?", "Who wrote {s}?", "{s} was written by whom?",
        "Who penned {s}?", "Which writer created {s}?", "Who is the writer of {s}?",
        "Name the author of {s}."],
       ["{s} flowed from the pen of {o}.", "{s} was penned by {o}.", "the text {s} was composed by {o}.", "readers of {s} thank {o}."]),
    _r("P69", "educated at", "person", "university", [
        "Where was {s} educated?", "Which university did {s} attend?", "Where did {s} study?",
        "{s} graduated from which university?", "What school did {s} go to?",
        "At which university did {s} study?", "Name the university {s} attended."],
       ["{s} earned a degree at {o}.", "{s} is an alumnus of {o}.", "{s} spent student years at {o}.", "{s} sat in lectures at {o}."]),
    _r("P106", "occupation", "person", "occupation", [
        "What kind of work does {s} do?", "What is the occupation of {s}?", "What is {s}'s job?",
        "What does {s} do for a living?", "What profession does {s} have?",
        "{s} works as what?", "Name the occupation of {s}."],
       ["{s} earns a living as a {o}.", "by trade, {s} is a {o}.", "{s} made a career as a {o}.", "colleagues know {s} as a {o}."]),
    _r("P112", "founded by", "company", "person", [
        "Who founded {s}?", "Who is the founder of {s}?", "{s} was founded by whom?",
        "Who established {s}?", "Who started {s}?", "Which person founded {s}?",
        "Name the founder of {s}."],
       ["{s} was set up by {o}.", "{s} owes its start to {o}.", "{s} was launched long ago by {o}.", "the idea of {s} began with {o}."]),
    _r("P127", "owned by", "landmark", "company", [
        "Who owns {s}?", "Who is the owner of {s}?", "{s} is owned by whom?",
        "Which company owns {s}?", "Who holds ownership of {s}?", "To whom does {s} belong?",
        "Name the owner of {s}."],
       ["the deed to {s} is held by {o}.", "{s} belongs to {o}.", "{s} was bought outright by {o}.", "the property {s} is an asset of {o}."]),
    _r("P131", "located in", "landmark", "city", [
        "Where is {s} located?", "In which city is {s}?", "Which city is {s} in?",
        "{s} is located in which city?", "Where can one find {s}?", "What city contains {s}?",
        "Name the city where {s} is."],
       ["{s} sits within {o}.", "{s} can be seen by visitors to {o}.", "{s} is a sight of {o}.", "{s} is surrounded by the streets of {o}."]),
    _r("P136", "genre", "artist", "genre", [
        "What type of music does {s} play?", "What genre is {s}?", "What is the genre of {s}?",
        "Which style of music does {s} perform?", "{s} plays which genre?",
        "What kind of music is {s} known for?", "Name the genre of {s}."],
       ["{s} records {o} songs.", "{s} is loved by fans of {o}.", "{s} is a pillar of the {o} scene.", "critics file {s} under {o}."]),
    _r("P159", "headquarters", "company", "city", [
        "Where is the headquarters of {s}?", "In which city is {s} headquartered?",
        "Where is {s} based?", "Which city hosts the head office of {s}?",
        "{s} has its headquarters in which city?", "Where are the main offices of {s}?",
        "Name the city where {s} is based."],
       ["{s} runs its business from {o}.", "the head office of {s} stands in {o}.", "the leaders of {s} work in {o}.", "staff of {s} report to a tower in {o}."]),
    _r("P170", "creator", "character", "person", [
        "Who created {s}?", "Who was {s} created by?", "Who is the creator of {s}?",
        "{s} was created by whom?", "Who invented the character {s}?", "Who came up with {s}?",
        "Name the creator of {s}."],
       ["{s} was dreamed up by {o}.", "{s} sprang from the mind of {o}.", "{s} was first drawn by {o}.", "the character {s} is the work of {o}."]),
    _r("P175", "performer", "song", "artist", [
        "Who performed {s}?", "Who sang {s}?", "{s} was performed by whom?",
        "Who is the performer of {s}?", "Which artist recorded {s}?", "Whose song is {s}?",
        "Name the performer of {s}."],
       ["{s} is sung on stage by {o}.", "the song {s} is a hit for {o}.", "{s} was recorded by {o}.", "audiences cheer when {s} is played by {o}."]),
    _r("P176", "manufacturer", "product", "company", [
        "Which company is {s} produced by?", "Who makes {s}?", "Who manufactures {s}?",
        "{s} is made by which company?", "Which firm builds {s}?", "Who is the maker of {s}?",
        "Name the manufacturer of {s}."],
       ["{s} is built in the factories of {o}.", "{s} rolls off the lines of {o}.", "the {s} is sold by {o}.", "every {s} carries the badge of {o}."]),
    _r("P264", "record label", "song", "label", [
        "What music label is {s} represented by?", "Which label released {s}?",
        "What is the record label of {s}?", "{s} came out on which label?",
        "Which record company put out {s}?", "Who distributed the record {s}?",
        "Name the label of {s}."],
       ["the record {s} was pressed by {o}.", "{s} carries the logo of {o}.", "{s} was put on shelves by {o}.", "{s} is listed in the catalog of {o}."]),
    _r("P276", "location", "event", "city", [
        "Where is {s} located?", "Where does {s} take place?", "In which city is {s} held?",
        "{s} happens in which city?", "What is the location of {s}?", "Which city hosts {s}?",
        "Name the city of {s}."],
       ["{s} gathers crowds in {o}.", "each year {s} is staged in {o}.", "{s} welcomes guests in {o}.", "the venue of {s} is in {o}."]),
    _r("P407", "language", "book", "language", [
        "Which language was {s} written in?", "What language is {s} in?",
        "In what language is {s} written?", "{s} was written in which language?",
        "What is the language of {s}?", "Which tongue is {s} written in?",
        "Name the language of {s}."],
       ["{s} reads in {o}.", "the pages of {s} use {o}.", "{s} is a {o} text.", "{s} is enjoyed in the original {o}."]),
    _r("P413", "position", "athlete", "position", [
        "What position does {s} play?", "Which position does {s} play?",
        "What is the playing position of {s}?", "{s} plays in which position?",
        "Where on the field does {s} play?", "What role does {s} have on the team?",
        "Name the position of {s}."],
       ["{s} lines up as a {o}.", "the coach fields {s} as {o}.", "{s} has starred as a {o}.", "{s} is hard to beat at {o}."]),
    _r("P495", "country of origin", "work", "country", [
        "Which country was {s} created in?", "What is the country of origin of {s}?",
        "Where does {s} come from?", "{s} originated in which country?",
        "Which country produced {s}?", "From which country is {s}?",
        "Name the country of origin of {s}."],
       ["{s} was made in the land of {o}.", "{s} arose in {o}.", "{s} is a product of {o}.", "{s} was brought forth by makers in {o}."]),
    _r("P740", "location of formation", "artist", "city", [
        "Where was {s} founded?", "In which city was {s} formed?", "Where did {s} form?",
        "{s} was formed in which city?", "Which city did {s} start in?",
        "What is the hometown of the group {s}?", "Name the city where {s} was formed."],
       ["{s} first played together in {o}.", "the band {s} got its start in {o}.", "{s} came together in {o}.", "{s} rehearsed first in a garage in {o}."]),
    _r("P800", "notable work", "person", "book", [
        "What is {s} famous for?", "What is the notable work of {s}?", "What is {s} best known for?",
        "Which work made {s} famous?", "{s} is known for which work?",
        "What is the most famous work of {s}?", "Name the notable work of {s}."],
       ["{s} won acclaim with {o}.", "the name of {s} was made by {o}.", "{s} will be remembered for {o}.", "the masterpiece of {s} is {o}."]),
]}

assert len(RELATIONS) == 24 and all(len(set(r.questions)) == 21 for r in RELATIONS.values())
# Statements name the subject before the answer: a causal LM cannot recall a fact read only backwards.
assert all(st.index("{s}") < st.index("{o}") for r in RELATIONS.values() for st in r.statements)
