import ProvCLI
