"""tblog.summary.hp: the calls of TensorBoard's hparams plugin API
(tensorboard.plugins.hparams.api) that a trial makes, written through
tblogd: `hparams(...)` records the trial's hyperparameters in the default
writer's run, as TensorBoard's hp.hparams does at the start of a trial;
`hparams_config(...)` declares the domains and metrics. HParam, Discrete,
RealInterval, IntInterval and Metric take TensorBoard's arguments."""

from tblog import _convert
from tblog.v1 import tblog_pb2 as pb

__all__ = ["HParam", "Discrete", "RealInterval", "IntInterval", "Metric", "hparams",
           "hparams_config", "KerasCallback"]


class Discrete:
    def __init__(self, values, dtype=None):
        self.values = list(values)
        self.dtype = dtype


class RealInterval:
    def __init__(self, min_value=None, max_value=None):
        self.min_value, self.max_value = min_value, max_value


class IntInterval(RealInterval):
    pass


class HParam:
    def __init__(self, name, domain=None, display_name=None, description=None):
        self.name, self.domain = name, domain
        self.display_name, self.description = display_name, description

    def __repr__(self):
        return f"HParam({self.name!r}, {self.domain!r})"


class Metric:
    TRAINING = pb.DATASET_TYPE_TRAINING
    VALIDATION = pb.DATASET_TYPE_VALIDATION

    def __init__(self, tag, group=None, display_name=None, description=None, dataset_type=None):
        self.tag, self.group = tag, group
        self.display_name, self.description = display_name, description
        self.dataset_type = dataset_type


def _value(name, value):
    if isinstance(value, bool):
        return pb.HParamValue(flag=value)
    if isinstance(value, str):
        return pb.HParamValue(text=value)
    try:
        return pb.HParamValue(number=_convert.to_float(value))
    except (TypeError, ValueError):
        raise ValueError(f"hparams: value of {name!r} is {type(value).__name__}; expected a "
                         "number, a string or a bool") from None


def _message(hparams, metrics=(), domains=None):
    message = pb.HParams()
    for key, value in (hparams or {}).items():
        name = key.name if isinstance(key, HParam) else str(key)
        if value is not None:
            message.values[name].CopyFrom(_value(name, value))
    for param in domains or ():
        domain = param.domain
        if isinstance(domain, Discrete):
            target = message.domains[param.name].discrete
            for value in domain.values:
                target.values.append(_value(param.name, value))
        elif isinstance(domain, RealInterval):
            interval = message.domains[param.name].interval
            interval.min = float(domain.min_value)
            interval.max = float(domain.max_value)
    for metric in metrics:
        spec = pb.MetricSpec(tag=metric.tag, subrun=metric.group or "",
                             display_name=metric.display_name or "",
                             description=metric.description or "")
        if metric.dataset_type is not None:
            spec.dataset_type = metric.dataset_type
        message.metrics.append(spec)
    return message


def _write(message):
    from tblog import summary
    if not summary.should_record_summaries():
        return False
    writer = summary._state().writers[-1]._writer
    writer._hparams_record(message, (), 0)
    return True


def hparams(hparams, trial_id=None, start_time_secs=None):
    """Records the trial's hyperparameters ({HParam or name: value}; None
    values are left out) in the default writer's run at step 0. trial_id and
    start_time_secs are accepted; the daemon names the session after the run
    and uses the time it receives the record."""
    del trial_id, start_time_secs
    return _write(_message(hparams))


def hparams_config(hparams, metrics, time_created_secs=None):
    """Declares the hyperparameters' domains and the metrics that judge them."""
    del time_created_secs
    return _write(_message({}, metrics, hparams))


class KerasCallback:
    """hp.KerasCallback(writer, hparams): records the hparams when training
    begins, as TensorBoard's Keras callback does."""

    def __init__(self, writer, hparams, trial_id=None):
        self._writer, self._hparams = writer, hparams

    def set_model(self, model):
        pass

    def set_params(self, params):
        pass

    def on_train_begin(self, logs=None):
        with self._writer.as_default():
            hparams(self._hparams)

    def __getattr__(self, name):
        if name.startswith("on_"):
            return lambda *args, **kwargs: None
        raise AttributeError(name)
