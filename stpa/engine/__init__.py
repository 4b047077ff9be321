"""The engine: what every model family shares (the layer between `data` and the families).

The training loop (`trainer`), the inference loop (`inference`), checkpoints and the run directory (`checkpoints`),
distribution (`distribute`), learning-rate schedules (`schedules`), metrics, score files and fusion, serving
(`serving`), TensorBoard pictures (`summaries`, `pictures`), result figures (`figures`), the model-family interface and
registry (`family`), the one configuration definition and its flags (`config`, `flags`), the input sources
(`inputs`) and prediction on one's own videos (`prediction`). No module here names a model family: families
register themselves (`family.register_family`) and the command lines (`stpa.families`) import them. See BUILD.md,
Architecture.
"""
