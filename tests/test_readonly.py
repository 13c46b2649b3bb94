"""The client half of read-only (nngraph.readonly): every clause that writes, administers or
reads outside the database is refused wherever it hides (case, comments, line breaks), and
the same words inside strings, comments, quoted names, properties and map keys are not."""

import pytest
from hypothesis import given, settings, strategies as st

from nngraph.analysis import gds, version_graph
from nngraph.errors import NNGraphError
from nngraph.ingest import writer
from nngraph.queries import canned
from nngraph.readonly import WRITING, check_read_only

READS = [*(query["text"] for query in canned().values()), version_graph.LAYERS, version_graph.LINKS,
         writer.UNFINISHED, writer.EXISTING, writer.OWNED, gds.VERSION_CHECK,
         "CALL gds.pageRank.stream('g') YIELD nodeId, score RETURN nodeId, score",
         "CALL gds.graph.project.estimate('*', '*') YIELD requiredMemory RETURN requiredMemory",
         "SHOW TRANSACTIONS YIELD currentQuery RETURN currentQuery", "CALL { MATCH (n) RETURN n } RETURN count(n)"]
CLAUSES = sorted(WRITING) + ["CALL db.createLabel('x')", "CALL gds.pageRank.write('g', {})",
                             "CALL gds.graph.export('g', {})", "CALL apoc.load.json('file:///etc/passwd')",
                             "CALL { SET n.x = 1 } IN TRANSACTIONS"]
SEPARATORS = st.sampled_from([" ", "\n", "\t", " /* x */ ", "\n// note\n", "  \r\n"])


@pytest.mark.parametrize("query", READS)
def test_the_projects_own_reads_pass(query):
    check_read_only(query)


@settings(max_examples=300, deadline=None)
@given(clause=st.sampled_from(CLAUSES), before=SEPARATORS, after=SEPARATORS, upper=st.booleans(),
       prefix=st.sampled_from(["", "MATCH (n:Neuron) ", "WITH 1 AS x ", "RETURN 1 UNION "]))
def test_writing_clauses_are_refused_wherever_they_hide(clause, before, after, upper, prefix):
    text = clause.upper() if upper else clause.lower()
    with pytest.raises(NNGraphError, match="runs read-only"):
        check_read_only(f"{prefix}{before}{text}{after}(n)")


@settings(max_examples=300, deadline=None)
@given(word=st.sampled_from(sorted(WRITING)), container=st.sampled_from([
    "RETURN '{w}' AS a", 'RETURN "x {w} y" AS a', "RETURN 1 AS `{w}`", "// {w}\nRETURN 1",
    "/* {w} */ RETURN 1", "MATCH (n) RETURN n.{w}", "RETURN {{{w}: 1}} AS m", "MATCH (n:{w}) RETURN n",
    "RETURN $" + "{w} AS p", "RETURN 1 AS {w}"]))
def test_the_same_words_as_data_pass(word, container):
    check_read_only(container.format(w=word.lower()))
