"""Task kinds beyond multiple choice and summarization, one module each: the kind, the readers
of its datasets' layouts (registered lazily in medarena.evaluate.formats) and, for kinds with a
rule of their own for generated text, that rule and the kind's metrics."""
