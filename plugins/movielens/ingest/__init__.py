"""How data arrives in landing: from a folder or a GroupLens download (:mod:`.datasets`), from the
MovieLens-shaped generator (:mod:`.synthetic`), chosen by the run's ``ingest`` param (:mod:`.landing`)."""
