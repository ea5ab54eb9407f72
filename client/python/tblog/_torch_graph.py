"""A torch.nn.Module traced into tblog.v1 graph nodes, for add_graph(model,
input_to_model): the daemon turns the node list into the GraphDef that
TensorBoard's Graphs dashboard shows. torch is imported only here, and only
when add_graph is given a module (the caller has torch loaded already)."""

from tblog.v1 import tblog_pb2 as pb


def _scope_path(scope_name):
    # "__module.layer1/__module.layer1.0.conv" -> "layer1/0/conv": the last
    # level of the scope holds the full dotted path of the submodule.
    last = scope_name.split("/")[-1]
    if last.startswith("__module."):
        last = last[len("__module."):]
    return last.replace(".", "/") if last and last != "__module" else ""


def _shape_attr(value):
    try:
        sizes = value.type().sizes()
    except (RuntimeError, AttributeError):
        return None
    if sizes is None:
        return None
    return pb.AttrValue(list=pb.AttrList(shape=[pb.Shape(dims=[int(d) for d in sizes])]))


def module_graph(model, inputs, use_strict_trace=True):
    """A tblog.v1.NodeList for `model` traced with `inputs` (a tensor or a
    tuple of them): one node per operation, named by module path; parameters
    and graph inputs/outputs as nodes of their own; tensor shapes in the
    `_output_shapes` attribute, as TensorBoard labels edges with it."""
    import torch

    if not isinstance(inputs, (tuple, list)):
        inputs = (inputs,)
    with torch.no_grad():
        traced = torch.jit.trace(model, tuple(inputs), strict=use_strict_trace)
    graph = traced.inlined_graph
    root = type(model).__name__
    # Traced attribute values carry no sizes; the module's state has them.
    state_shapes = {key: list(value.shape) for key, value in model.state_dict().items()}
    nodes = pb.NodeList()
    names = {}          # debug name of a value -> node name (":i" for outputs after the first)
    module_paths = {}   # debug name of a module value -> its dotted path

    graph_inputs = list(graph.inputs())
    if graph_inputs:
        module_paths[graph_inputs[0].debugName()] = ""
    for value in graph_inputs[1:]:
        name = f"{root}/input/{value.debugName()}"
        node = nodes.node.add(name=name, op="IO Node")
        shape = _shape_attr(value)
        if shape is not None:
            node.attrs["_output_shapes"].CopyFrom(shape)
        names[value.debugName()] = name

    for node_ in graph.nodes():
        kind = node_.kind()
        outputs = list(node_.outputs())
        if kind == "prim::Constant":
            continue
        if kind == "prim::GetAttr":
            owner = next(iter(node_.inputs())).debugName()
            if owner not in module_paths:
                continue
            path = ".".join(p for p in (module_paths[owner], node_.s("name")) if p)
            out = outputs[0]
            if out.type().kind() == "TensorType":
                name = f"{root}/{path.replace('.', '/')}"
                node = nodes.node.add(name=name, op="Parameter")
                if path in state_shapes:
                    node.attrs["_output_shapes"].list.shape.add(dims=state_shapes[path])
                names[out.debugName()] = name
            else:
                module_paths[out.debugName()] = path
            continue
        scope = _scope_path(node_.scopeName())
        base = f"{root}/{scope}" if scope else root
        name = f"{base}/{kind.split('::')[-1]}_{outputs[0].debugName() if outputs else len(nodes.node)}"
        node = nodes.node.add(name=name, op=kind)
        node.inputs.extend(names[v.debugName()] for v in node_.inputs() if v.debugName() in names)
        shapes = [_shape_attr(v) for v in outputs]
        if shapes and all(s is not None for s in shapes):
            attr = node.attrs["_output_shapes"].list
            for s in shapes:
                attr.shape.extend(s.list.shape)
        for i, value in enumerate(outputs):
            names[value.debugName()] = name if i == 0 else f"{name}:{i}"

    for value in graph.outputs():
        name = f"{root}/output/{value.debugName()}"
        node = nodes.node.add(name=name, op="IO Node")
        if value.debugName() in names:
            node.inputs.append(names[value.debugName()])
    return nodes
