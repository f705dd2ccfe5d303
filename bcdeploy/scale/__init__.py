"""Past one machine, on Ray: the model through the object store (model_blob) and `infer --ray`
(ray_infer). Ray is imported lazily, inside functions: importing bcdeploy.scale never needs it."""
