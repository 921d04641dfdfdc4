"""CloudWatch alarms evaluated as AWS evaluates them: moto stores metric data and alarms but never
compares one with the other, so the cost guard's idle stop could only be set by hand (SetAlarmState).

What this models: when data arrives (PutMetricData, as EC2 publishes CPUUtilization), every alarm on
that metric and its dimensions is evaluated over its last EvaluationPeriods periods (ending at the
newest datapoint's period) with its own statistic; all of them breaching -> ALARM (whose stop/terminate
action ec2_instances carries out), any of them not breaching -> OK. A period without data does not
breach (TreatMissingData's default, `missing`, keeps the state).
EC2's basic monitoring publishes one statistic set per 5 minutes built from five 1-minute samples
(SampleCount 5): its Average hides a one-minute burst that its Maximum shows. A test publishes
statistic sets the same way.
Not modelled: M-of-N (DatapointsToAlarm), TreatMissingData other than `missing`, the evaluation delay
of real CloudWatch (it runs at once here), extended statistics, metric-math alarms.
"""
import datetime

_COMPARE = {
    "GreaterThanOrEqualToThreshold": lambda value, limit: value >= limit,
    "GreaterThanThreshold": lambda value, limit: value > limit,
    "LessThanThreshold": lambda value, limit: value < limit,
    "LessThanOrEqualToThreshold": lambda value, limit: value <= limit,
}


def install():
    """Patch moto; emulator.install_extensions() calls it, once per process."""
    from moto.cloudwatch.models import CloudWatchBackend

    original_put = CloudWatchBackend.put_metric_data

    def put_metric_data(self, namespace, metric_data):
        original_put(self, namespace, metric_data)
        names = {m["MetricName"] for m in metric_data}
        for alarm in list(self.alarms.values()):
            if alarm.namespace == namespace and alarm.metric_name in names:
                evaluate(self, alarm)
    CloudWatchBackend.put_metric_data = put_metric_data


def _breaching_periods(backend, alarm):
    """[True/False/None per period]: the alarm's last EvaluationPeriods periods, None where no data."""
    dimensions = [{"Name": d.name, "Value": d.value} for d in alarm.dimensions]
    data = [d for d in backend.get_all_metrics()
            if d.namespace == alarm.namespace and d.name == alarm.metric_name
            and d.filter(None, None, dimensions)]
    if not data:
        return []
    period = datetime.timedelta(seconds=int(alarm.period))
    newest = max(d.timestamp for d in data)
    end = newest + period
    start = end - period * int(alarm.evaluation_periods)
    stats = backend.get_metric_statistics(alarm.namespace, alarm.metric_name, start, end,
                                          int(alarm.period), [alarm.statistic], dimensions)
    by_start = {}
    for stat in stats:
        by_start[stat.timestamp] = stat.get_statistics_for_type(alarm.statistic)
    compare = _COMPARE[alarm.comparison_operator]
    out = []
    moment = start
    while moment < end:
        # get_metric_statistics groups from the first datapoint on, so match each period by overlap
        value = next((v for t, v in by_start.items() if moment <= t < moment + period), None)
        out.append(None if value is None else compare(float(value), float(alarm.threshold)))
        moment += period
    return out


def evaluate(backend, alarm):
    periods = _breaching_periods(backend, alarm)
    if not periods:
        return
    if all(p is True for p in periods) and len(periods) == int(alarm.evaluation_periods):
        state, reason = "ALARM", "Threshold Crossed: %d datapoints breached the threshold (%s %s)" % (
            len(periods), alarm.statistic, alarm.threshold)
    elif any(p is False for p in periods):
        state, reason = "OK", "Threshold Crossed: a datapoint did not breach the threshold"
    else:
        return  # missing data keeps the state
    if alarm.state_value != state:
        alarm.update_state(reason, "{}", state)
