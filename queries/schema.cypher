// Uniqueness constraints and indexes, created before any load. Idempotent (IF NOT EXISTS).
CREATE CONSTRAINT model_name IF NOT EXISTS FOR (m:Model) REQUIRE m.name IS UNIQUE;
CREATE CONSTRAINT version_uid IF NOT EXISTS FOR (v:Version) REQUIRE v.uid IS UNIQUE;
CREATE CONSTRAINT layer_uid IF NOT EXISTS FOR (l:Layer) REQUIRE l.uid IS UNIQUE;
CREATE CONSTRAINT neuron_uid IF NOT EXISTS FOR (n:Neuron) REQUIRE n.uid IS UNIQUE;
CREATE CONSTRAINT channel_uid IF NOT EXISTS FOR (c:Channel) REQUIRE c.uid IS UNIQUE;
CREATE INDEX version_model IF NOT EXISTS FOR (v:Version) ON (v.model);
CREATE INDEX layer_version IF NOT EXISTS FOR (l:Layer) ON (l.version);
CREATE INDEX neuron_version IF NOT EXISTS FOR (n:Neuron) ON (n.version);
CREATE INDEX neuron_layer IF NOT EXISTS FOR (n:Neuron) ON (n.layer);
CREATE INDEX channel_version IF NOT EXISTS FOR (c:Channel) ON (c.version);
CREATE INDEX skipped_version IF NOT EXISTS FOR (s:Skipped) ON (s.version);
