"""Knowledge: documents, embeddings, the Chroma index, product terms, answer verification."""
