-- The `rlfr` module prelude (placeholder until the DSL lands).
return {}
