import Foundation
import ProvCLI

exit(Prov.main(Array(CommandLine.arguments.dropFirst())))
