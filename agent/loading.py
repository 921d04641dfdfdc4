"""How a classify run gets its catalogue and its bound models: read and bound afresh (FreshModels),
or kept from earlier runs by the warm agent (agent.warm_server.WarmModels). Valid Python 2.7 and 3.6+.
"""
from __future__ import print_function, division, absolute_import


class FreshModels(object):
    """Every run reads the zoo's catalogue and binds its models: what a one-off `agent classify` does."""

    def catalogue(self, the_zoo, cache_dir, policy):
        return the_zoo.catalogue(cache_dir, policy)

    def classifiers(self, args, entries, sources, the_zoo, cache_dir, policy, context):
        """One bound classifier per (name, catalogue entry), fetching what the cache lacks."""
        from agent import cache
        classifiers = []
        for name, entry in entries:
            files = cache.ensure_model(name, entry, the_zoo, cache_dir, policy)
            classifiers.append(self.classifier(args, name, entry, files, sources, context))
        return classifiers

    def classifier(self, args, name, entry, files, sources, context):
        from agent import classify, predict
        # Read only when no calibrated graph is cached (agent.int8_cache).
        calibration = None
        if args.int8:
            calibration = (lambda spec=entry["input"]: classify.calibration_batch(sources, spec))  # noqa: E731
        return predict.load(name, entry, files, args.batch_size, context, calibration, engine=args.engine,
                            input_count=len(sources))
