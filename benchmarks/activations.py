"""What a functional Keras model keeps for backprop, counted from its graph (shared by the benchmarks)."""

from __future__ import annotations


def keras_activation_bytes(model, *, per_example: bool = True) -> tuple[int, int]:
    """(kept, largest live pair) float32 bytes of one example through a functional Keras model's graph.

    kept: the distinct tensors that feed a layer with trainable weights (a convolution's or dense layer's input is
    needed for its kernel's gradient, a batch norm's input for its own), plus each nonlinear activation's output;
    a tensor feeding several layers counts once. largest: max over layers of inputs + output (what inference needs
    live at once).
    """
    import math

    import keras

    kept: dict[int, int] = {}
    largest = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        for node in layer._inbound_nodes:
            inputs = keras.tree.flatten(node.input_tensors)
            outputs = keras.tree.flatten(node.output_tensors)

            def size(tensor) -> int:
                return 4 * math.prod(d for d in tensor.shape[1:] if d is not None)

            live = sum(size(t) for t in inputs) + sum(size(t) for t in outputs)
            largest = max(largest, live)
            if layer.trainable_weights:
                for tensor in inputs:
                    kept[id(tensor)] = size(tensor)
            if isinstance(layer, keras.layers.Activation | keras.layers.ReLU):
                for tensor in outputs:
                    kept[id(tensor)] = size(tensor)
    return sum(kept.values()), largest
