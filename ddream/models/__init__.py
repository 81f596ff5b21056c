"""The networks: the DC-AE style autoencoder, its patch discriminator, and the DiT. They know no files."""
