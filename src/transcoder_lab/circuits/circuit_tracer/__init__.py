"""circuit-tracer 0.5.0 (Hanna, Piotrowski, Lindsey, Ameisen) from the lab's side, without importing
it (it cannot be installed beside our pinned stack): its source was read, its static viewer reused.

- `export`: our per-layer transcoders in the layout circuit-tracer's `load_transcoder_set` loads
  (`python -m transcoder_lab.circuits.circuit_tracer.export OUT DIRS...`);
- `export_crosslayer`: a cross-layer transcoder (dictionaries/crosslayer.py) in the layout of
  circuit-tracer's `load_clt`;
- `assets`: the pinned viewer and JavaScript libraries, fetched and installed offline into
  `.cache/frontend/` (`make frontend`);
- `graph_files`: our beam-search graphs and pruned full graphs as the viewer's graph files;
- `server`: the viewer served on 127.0.0.1 for a folder of graph files;
- `screenshots`: PNGs of graphs in the viewer, in headless Chromium (the `graph_screenshots` stage).

`python -m transcoder_lab.circuits.circuit_tracer fetch|install|serve|screenshot` runs the viewer's
commands (`__main__`). The package imports none of its modules, so each user loads only what it
needs (the export needs no viewer, the case studies no server).
"""
