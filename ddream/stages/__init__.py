"""One module per stage of the pipeline; each reads its inputs as artifacts from the state directory."""
