// Lint Cypher texts with Neo4j's parser and semantic analysis (@neo4j-cypher/language-support).
// stdin: {"schema": {labels, relationshipTypes, propertyKeys}, "queries": [{"name", "text"}]}
// stdout: [{"name", "problems": ["line:col message", ...]}]; "parameter not defined" is not a problem,
// since parameters are supplied at run time. Procedure and function signatures are those the
// managed Neo4j 5.26 with OpenGDS serves (signatures.json, from SHOW PROCEDURES/FUNCTIONS YIELD *).
import { lintCypherQuery, isNotParamError } from '@neo4j-cypher/language-support';
import { readFileSync } from 'node:fs';

const request = JSON.parse(readFileSync(0, 'utf8'));
const served = JSON.parse(readFileSync(new URL('./signatures.json', import.meta.url), 'utf8'));
const schema = {
  ...request.schema,
  procedures: { 'CYPHER 5': served.procedures },
  functions: { 'CYPHER 5': served.functions },
};
const results = request.queries.map(({ name, text }) => ({
  name,
  problems: lintCypherQuery(text, schema).diagnostics
    .filter(isNotParamError)
    .map((d) => `${d.range.start.line + 1}:${d.range.start.character + 1} ${d.message}`),
}));
process.stdout.write(JSON.stringify(results));
