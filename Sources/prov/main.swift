import ProvCLI
import Foundation

exit(Prov.main(Array(CommandLine.arguments.dropFirst())))
