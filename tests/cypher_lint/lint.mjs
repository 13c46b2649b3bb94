// Lint Cypher texts with Neo4j's parser and semantic analysis (@neo4j-cypher/language-support).
// stdin: {"schema": {labels, relationshipTypes, propertyKeys}, "queries": [{"name", "text"}]}
// stdout: [{"name", "problems": ["line:col message", ...]}]; "parameter not defined" is not a problem,
// since parameters are supplied at run time. Procedure and function signatures come from the
// package's mock schema (GDS 2.x, APOC, Neo4j built-ins of Cypher 5).
import { lintCypherQuery, isNotParamError, testData } from '@neo4j-cypher/language-support';
import { readFileSync } from 'node:fs';

const request = JSON.parse(readFileSync(0, 'utf8'));
const schema = {
  ...request.schema,
  procedures: testData.mockSchema.procedures,
  functions: testData.mockSchema.functions,
};
const results = request.queries.map(({ name, text }) => ({
  name,
  problems: lintCypherQuery(text, schema).diagnostics
    .filter(isNotParamError)
    .map((d) => `${d.range.start.line + 1}:${d.range.start.character + 1} ${d.message}`),
}));
process.stdout.write(JSON.stringify(results));
