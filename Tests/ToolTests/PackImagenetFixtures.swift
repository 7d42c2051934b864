import System
import Foundation

/// Small images made once with Pillow (40x30 gradients), so the tool tests need
/// no encoder: an RGB JPEG (quality 90), a greyscale JPEG and an RGB PNG.
enum PackFixtures {
    static let rgbJPEG = decode(
        "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAMCAgMCAgMDAwMEAwMEBQgFBQQEBQoHBwYIDAoMDAsKCwsNDhIQDQ4RDgsLEBYQERMU" +
        "FRUVDA8XGBYUGBIUFRT/2wBDAQMEBAUEBQkFBQkUDQsNFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQU" +
        "FBQUFBQUFBT/wAARCAAeACgDASIAAhEBAxEB/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAECAwQFBgcICQoL/8QAtRAAAgEDAwIEAwUF" +
        "BAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAkM2JyggkKFhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVW" +
        "V1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKTlJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi" +
        "4+Tl5ufo6erx8vP09fb3+Pn6/8QAHwEAAwEBAQEBAQEBAQAAAAAAAAECAwQFBgcICQoL/8QAtREAAgECBAQDBAcFBAQAAQJ3AAEC" +
        "AxEEBSExBhJBUQdhcRMiMoEIFEKRobHBCSMzUvAVYnLRChYkNOEl8RcYGRomJygpKjU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVm" +
        "Z2hpanN0dXZ3eHl6goOEhYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0tba3uLm6wsPExcbHyMnK0tPU1dbX2Nna4uPk5ebn6Onq" +
        "8vP09fb3+Pn6/9oADAMBAAIRAxEAPwD4xtPCHT5P0ratPCHT5P0r1S08IdPk/Stq08IdPk/Sv7C4ozv4tT4rhziL4fePK7Twh0+T" +
        "9K2rTwh0+T9K9UtPCHT5P0ratPCHT5P0r+ReKM6+LU/qLhziH4fePK7Twh0+T9KK9utPCHT5P0or+X8yzv8A2h6n9GZfxD+4XvE9" +
        "p4Q6fu/0ratPCHT93+len2nhqLjkVtWnhqLjpX9wcUZy/eP8NuHM/l7up5faeEOn7utq08IdP3den2nhqLjkVtWnhqLjkV/InFGc" +
        "y94/qPhzP5e7qeYWnhDp+7or2m08NRcciiv5fzLOZfWGf0Xl+fy9gtT/2Q==")
    static let greyJPEG = decode(
        "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAMCAgMCAgMDAwMEAwMEBQgFBQQEBQoHBwYIDAoMDAsKCwsNDhIQDQ4RDgsLEBYQERMU" +
        "FRUVDA8XGBYUGBIUFRT/wAALCAAeACgBAREA/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAECAwQFBgcICQoL/8QAtRAAAgEDAwIEAwUF" +
        "BAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAkM2JyggkKFhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVW" +
        "V1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKTlJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi" +
        "4+Tl5ufo6erx8vP09fb3+Pn6/9oACAEBAAA/APzm8Cf8s6+i/Af/ACz/AAr6L8Cf8s/wr6M8B9I6+i/AfWOv50vAn/LOvovwH/yz" +
        "/CvovwJ/yz/CvozwH0jr6L8B9Y6/nS8Cf8s6+i/Af/LP8K+i/An/ACz/AAr6M8B9I6+i/AfWOv50vAn/ACzr6L8B/wDLP8K+i/An" +
        "/LP8K+jPAfSOvovwH1jr/9k=")
    static let rgbPNG = decode(
        "iVBORw0KGgoAAAANSUhEUgAAACgAAAAeCAIAAADRv8uKAAAAS0lEQVR4nO3SOQ7AIAwF0YmEWO5/WmiSG6TiQzMuXFl6heeBtzIb" +
        "s7J+dmPtPSt0rkxhCJ+C/bFwDDYu4RhsXMIx2LiEY7BxCYfmAwLEKXSA1iYsAAAAAElFTkSuQmCC")

    static func decode(_ s: String) -> [UInt8] {
        guard let d = Data(base64Encoded: s) else { preconditionFailure("bad fixture") }
        return [UInt8](d)
    }
}
